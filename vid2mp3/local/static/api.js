// The functions' public HTTP API, called the way any client would (OpenFaaS gateway paths).

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.name = "ApiError";
    this.status = status;
  }
}

// The API's base URL from <meta name="vid2mp3-api">; empty means this page's origin.
export function apiBaseFrom(doc) {
  const meta = doc.querySelector('meta[name="vid2mp3-api"]');
  return (meta?.getAttribute("content") ?? "").trim().replace(/\/+$/, "");
}

function base64Utf8(text) {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

// What a refusal's body says: the server's {"error": ...} word for word when there is one,
// S3's <Message> for storage errors; null when it says neither.
export function reasonIn(text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string" && body.error) return body.error;
  } catch {
    const xml = /<Message>([^<]*)<\/Message>/.exec(text);
    if (xml) return xml[1];
  }
  return null;
}

// The message to show for a refused request: its body's reason, else the status line.
export async function errorMessage(response) {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body is gone (aborted); the status line below still says something.
  }
  return reasonIn(text) ?? `the server answered ${response.status} ${response.statusText}`.trim();
}

export class Api {
  constructor(base) {
    this.base = base;
  }

  url(path) {
    return `${this.base}${path}`;
  }

  unreachable() {
    const where = this.base || window.location.origin;
    return `Cannot reach the server at ${where}. Check your connection and try again.`;
  }

  async call(path, { method = "GET", token, basic, body } = {}) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (basic) headers.Authorization = `Basic ${base64Utf8(`${basic.email}:${basic.password}`)}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(this.url(path), init);
    } catch {
      throw new ApiError(this.unreachable());
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    return response.status === 204 ? null : response.json();
  }

  register(email, password) {
    return this.call("/function/register", { method: "POST", body: { email, password } });
  }

  login(email, password) {
    return this.call("/function/login", { method: "POST", basic: { email, password } });
  }

  uploadInit(token, file, options) {
    return this.call("/function/upload-init", {
      method: "POST",
      token,
      body: {
        filename: file.name,
        size: file.size,
        // Browsers leave the type empty for files they do not know (often .mkv); the service
        // accepts the generic type and lets ffmpeg's probe decide.
        content_type: file.type || "application/octet-stream",
        options,
      },
    });
  }

  listJobs(token) {
    return this.call("/function/jobs", { token });
  }

  complete(token, jobId) {
    return this.call(`/function/jobs/${encodeURIComponent(jobId)}/complete`, {
      method: "POST",
      token,
    });
  }

  // The MP3 as a Blob. The endpoint needs the Authorization header, so a plain link cannot
  // fetch it; when storage hands out presigned URLs it answers 302 and fetch follows it (the
  // browser drops Authorization on a cross-origin redirect, which is what S3 wants).
  async download(token, jobId, onProgress) {
    let response;
    try {
      response = await fetch(this.url(`/function/jobs/${encodeURIComponent(jobId)}/download`), {
        headers: { Authorization: `Bearer ${token}` },
      });
    } catch {
      throw new ApiError(this.unreachable());
    }
    if (!response.ok) throw new ApiError(await errorMessage(response), response.status);
    const total = Number(response.headers.get("Content-Length")) || 0;
    if (!response.body) return response.blob();
    const reader = response.body.getReader();
    const chunks = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      received += value.byteLength;
      onProgress(received, total);
    }
    return new Blob(chunks, { type: "audio/mpeg" });
  }
}

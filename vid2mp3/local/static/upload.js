// Sending a file's bytes where upload-init said: one PUT, or an S3 multipart upload with
// presigned part URLs sent a few at a time. XMLHttpRequest, not fetch, because only it reports
// upload progress.

import { reasonIn } from "./api.js";

export const PARALLEL_PARTS = 3;
const PART_RETRIES = 2;

// Headers a page may not set; the browser refuses them with a console error, and sets the
// real ones (Content-Length from the Blob) itself.
const FORBIDDEN_HEADERS = new Set([
  "accept-charset", "accept-encoding", "connection", "content-length", "cookie", "date",
  "expect", "host", "keep-alive", "origin", "referer", "te", "trailer", "transfer-encoding",
  "upgrade", "user-agent", "via",
]);

export class UploadError extends Error {
  constructor(message, { retryable = false, aborted = false } = {}) {
    super(message);
    this.name = "UploadError";
    this.retryable = retryable;
    this.aborted = aborted;
  }
}

function failureMessage(xhr) {
  return (
    reasonIn(xhr.responseText || "") ??
    `the upload was refused (${xhr.status} ${xhr.statusText})`.trim()
  );
}

function isRetryable(status) {
  return status === 0 || status === 408 || status === 429 || status >= 500;
}

// One PUT of `body`; `onLoaded(bytes)` as it goes. Returns { promise, abort }.
export function put(url, body, headers, onLoaded) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers || {})) {
      if (!FORBIDDEN_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onLoaded(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onLoaded(body.size);
        resolve();
      } else {
        reject(new UploadError(failureMessage(xhr), { retryable: isRetryable(xhr.status) }));
      }
    };
    xhr.onerror = () =>
      reject(new UploadError("the connection broke during the upload", { retryable: true }));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => reject(new UploadError("upload cancelled", { aborted: true }));
    xhr.send(body);
  });
  return { promise, abort: () => xhr.abort() };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Send `file` per `target` (upload-init's `upload`); `onProgress(sentBytes)` as it goes.
// Returns { promise, abort }. A multipart upload needs no ETags from here: the backend lists
// the parts it holds when the page calls `complete`.
export function transfer(file, target, onProgress) {
  if (!Array.isArray(target.parts) || target.parts.length === 0) {
    return put(target.url, file, target.headers, onProgress);
  }
  return multipart(file, target, onProgress);
}

function multipart(file, target, onProgress) {
  const urls = target.parts;
  const partSize = target.part_size;
  const sent = new Array(urls.length).fill(0);
  const running = new Set();
  let next = 0;
  let stopped = false;

  const report = () => onProgress(sent.reduce((a, b) => a + b, 0));
  const abortAll = () => {
    stopped = true;
    for (const request of running) request.abort();
  };

  async function sendPart(index) {
    const blob = file.slice(index * partSize, Math.min(file.size, (index + 1) * partSize));
    for (let attempt = 0; ; attempt += 1) {
      const request = put(urls[index], blob, target.headers, (loaded) => {
        sent[index] = loaded;
        report();
      });
      running.add(request);
      try {
        await request.promise;
        return;
      } catch (error) {
        sent[index] = 0;
        report();
        if (stopped || !error.retryable || attempt >= PART_RETRIES) throw error;
      } finally {
        running.delete(request);
      }
      await sleep(1000 * 2 ** attempt);
      if (stopped) throw new UploadError("upload cancelled", { aborted: true });
    }
  }

  async function worker() {
    while (!stopped && next < urls.length) {
      const index = next;
      next += 1;
      await sendPart(index);
    }
  }

  const expected = Math.ceil(file.size / partSize);
  const promise =
    partSize > 0 && expected === urls.length
      ? Promise.all(Array.from({ length: Math.min(PARALLEL_PARTS, urls.length) }, worker)).then(
          () => undefined,
          (error) => {
            abortAll();
            throw error;
          },
        )
      : Promise.reject(
          new UploadError(
            `the server planned ${urls.length} parts of ${partSize} bytes, which does not fit ` +
              `this ${file.size}-byte file; try again`,
          ),
        );
  return { promise, abort: abortAll };
}

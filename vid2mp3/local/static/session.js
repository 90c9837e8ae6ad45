// The signed-in session: the token lives in sessionStorage (this tab only, gone when it closes)
// and is dropped once its `exp` has passed.

const KEY = "vid2mp3.session";
let memory = null; // when sessionStorage is unavailable (some private modes), the tab's memory

// The token's `exp` claim in Unix seconds, or null when it cannot be read.
export function tokenExpiry(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const claims = JSON.parse(atob(padded));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch {
    return null;
  }
}

export function makeSession(email, token, expiresAt) {
  const exp = tokenExpiry(token);
  const candidates = [exp, expiresAt].filter((v) => typeof v === "number");
  return { email, token, expiresAt: candidates.length ? Math.min(...candidates) : 0 };
}

export function isExpired(session, now = Date.now()) {
  return !session.expiresAt || session.expiresAt * 1000 <= now;
}

// The stored session, or null; `expired` says whether one was dropped for being too old.
export function loadSession() {
  let raw = memory;
  try {
    raw = window.sessionStorage.getItem(KEY) ?? memory;
  } catch {
    // Storage is blocked; the in-memory copy is all there is.
  }
  if (!raw) return { session: null, expired: false };
  try {
    const session = JSON.parse(raw);
    if (typeof session.token !== "string" || typeof session.email !== "string") throw new Error();
    if (isExpired(session)) {
      clearSession();
      return { session: null, expired: true };
    }
    return { session, expired: false };
  } catch {
    clearSession();
    return { session: null, expired: false };
  }
}

export function saveSession(session) {
  memory = JSON.stringify(session);
  try {
    window.sessionStorage.setItem(KEY, memory);
  } catch {
    // Kept in memory only: the session ends with this page instead of this tab.
  }
}

export function clearSession() {
  memory = null;
  try {
    window.sessionStorage.removeItem(KEY);
  } catch {
    // Nothing stored, nothing to remove.
  }
}

// The page: signed-out and signed-in views, uploads, the live jobs list, downloads. It talks to
// the functions only through their public HTTP API (api.js).

import { Api, ApiError, apiBaseFrom } from "./api.js";
import { JobCard, cardView } from "./cards.js";
import { RateMeter } from "./format.js";
import { Poller } from "./poller.js";
import { clearSession, isExpired, loadSession, makeSession, saveSession } from "./session.js";
import { transfer } from "./upload.js";

const MAX_PARALLEL_FILES = 2;
const EXPIRED = "Your session has expired. Sign in again to see your files.";
const ACTIVE_PHASES = new Set(["init", "uploading", "completing"]);
const MOVING_STATES = new Set(["uploaded", "converting"]);

const $ = (id) => document.getElementById(id);
const api = new Api(apiBaseFrom(document));

const state = {
  session: null,
  jobs: [],
  jobsLoaded: false,
  uploads: new Map(), // upload id → this tab's upload of one file
  downloads: new Map(), // job id → { received, total, error }
  dismissed: new Set(), // job ids whose unfinished upload the user dismissed
  lastStates: null, // job id → state at the previous poll, to announce what changed
  expiryTimer: null,
};
const cards = new Map(); // card key → JobCard
let nextUploadId = 1;
let renderQueued = false;

const poller = new Poller(refreshJobs, { onError: showJobsError, onSuccess: hideJobsError });

// ---- small helpers

function show(el, visible) {
  el.hidden = !visible;
}

function announce(message) {
  const announcer = $("announcer");
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = message;
  }, 100);
}

function showNotice(message) {
  $("notice").textContent = message;
  show($("notice"), Boolean(message));
}

// A 401 from any signed-in call ends the session, with the server's reason.
function endSessionOn401(error, session) {
  if (error instanceof ApiError && error.status === 401 && state.session === session) {
    signOut(error.message);
    return true;
  }
  return false;
}

// ---- signing in and out

function authMode() {
  return $("mode-signup").checked ? "signup" : "signin";
}

function onModeChange() {
  const signup = authMode() === "signup";
  $("auth-submit").textContent = signup ? "Create account" : "Sign in";
  $("password").autocomplete = signup ? "new-password" : "current-password";
  show($("password-hint"), signup);
  showAuthError("");
}

function showAuthError(message) {
  $("auth-error").textContent = message;
  show($("auth-error"), Boolean(message));
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const email = $("email").value.trim();
  const password = $("password").value;
  const mode = authMode();
  if (!email || !password) {
    showAuthError("Enter your email address and a password.");
    (email ? $("password") : $("email")).focus();
    return;
  }
  const submit = $("auth-submit");
  const label = submit.textContent;
  submit.disabled = true;
  submit.textContent = mode === "signup" ? "Creating your account…" : "Signing in…";
  showAuthError("");
  try {
    if (mode === "signup") await api.register(email, password);
    const { token, expires_at: expiresAt } = await api.login(email, password);
    signIn(makeSession(email.toLowerCase(), token, expiresAt));
  } catch (error) {
    showAuthError(error.message);
    $(error.status === 401 ? "password" : "email").focus();
  } finally {
    submit.disabled = false;
    submit.textContent = label;
  }
}

function signIn(session) {
  if (isExpired(session)) {
    showSignedOut(EXPIRED);
    return;
  }
  saveSession(session);
  state.session = session;
  state.jobs = [];
  state.jobsLoaded = false;
  state.lastStates = null;
  clearTimeout(state.expiryTimer);
  // setTimeout holds at most ~24.8 days; a token lasts a day, and the poll re-checks anyway.
  const ms = Math.min(session.expiresAt * 1000 - Date.now(), 2 ** 31 - 1);
  state.expiryTimer = setTimeout(() => signOut(EXPIRED), ms);

  $("password").value = "";
  showAuthError("");
  showNotice("");
  $("account-email").textContent = session.email;
  show($("account"), true);
  show($("auth-view"), false);
  show($("app-view"), true);
  show($("jobs-loading"), true);
  render();
  poller.start();
  $("upload-title").focus();
}

function signOut(message = "") {
  for (const upload of state.uploads.values()) {
    upload.cancelled = true;
    upload.handle?.abort();
  }
  poller.stop();
  clearTimeout(state.expiryTimer);
  clearSession();
  state.session = null;
  state.jobs = [];
  state.uploads.clear();
  state.downloads.clear();
  state.dismissed.clear();
  for (const card of cards.values()) card.el.remove();
  cards.clear();
  showSignedOut(message);
}

function showSignedOut(message) {
  show($("account"), false);
  show($("app-view"), false);
  show($("auth-view"), true);
  hideJobsError();
  showNotice(message);
  $("email").focus();
}

// ---- the jobs list

function isBusy() {
  for (const upload of state.uploads.values()) {
    if (upload.phase === "queued" || ACTIVE_PHASES.has(upload.phase)) return true;
  }
  return state.jobs.some(
    (job) =>
      MOVING_STATES.has(job.state) ||
      (job.state === "converted" && job.summary_status === "pending"),
  );
}

async function refreshJobs() {
  const session = state.session;
  if (!session) return "idle";
  if (isExpired(session)) {
    signOut(EXPIRED);
    return "idle";
  }
  let body;
  try {
    body = await api.listJobs(session.token);
  } catch (error) {
    if (endSessionOn401(error, session)) return "idle";
    throw error;
  }
  if (state.session !== session) return "idle"; // signed out (or in as someone else) meanwhile
  announceChanges(body.jobs);
  state.jobs = body.jobs;
  state.jobsLoaded = true;
  render();
  return isBusy() ? "busy" : "idle";
}

function announceChanges(jobs) {
  const previous = state.lastStates;
  state.lastStates = new Map(jobs.map((job) => [job.id, job.state]));
  if (!previous) return;
  const news = [];
  for (const job of jobs) {
    const before = previous.get(job.id);
    if (before === job.state) continue;
    if (job.state === "converted" || (job.state === "completed" && before !== "converted")) {
      news.push(`${job.filename}: MP3 ready to download.`);
    } else if (job.state === "failed") {
      news.push(`${job.filename} failed: ${job.error || "no reason given"}`);
    }
  }
  if (news.length) announce(news.join(" "));
}

function showJobsError(error, retryInMs) {
  const seconds = Math.round(retryInMs / 1000);
  $("jobs-error-text").textContent =
    `Could not load your files: ${error.message} Trying again in ${seconds} s.`;
  show($("jobs-error"), true);
  show($("jobs-loading"), false);
}

function hideJobsError() {
  show($("jobs-error"), false);
}

function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(render);
}

// The cards to show, newest first: this tab's uploads (merged with their jobs once the server
// lists them) and the server's other jobs.
function entries() {
  const uploadOf = new Map();
  for (const upload of state.uploads.values()) {
    if (upload.jobId) uploadOf.set(upload.jobId, upload);
  }
  const listed = new Set(state.jobs.map((job) => job.id));
  const out = [];
  for (const upload of state.uploads.values()) {
    if (!upload.jobId || !listed.has(upload.jobId)) {
      out.push({ key: `u${upload.id}`, at: upload.addedAt, upload, job: null });
    }
  }
  for (const job of state.jobs) {
    const upload = uploadOf.get(job.id);
    if (upload) {
      out.push({ key: `u${upload.id}`, at: upload.addedAt, upload, job });
    } else if (!state.dismissed.has(job.id)) {
      out.push({ key: `j${job.id}`, at: job.created_at, upload: null, job });
    }
  }
  // Sorting on when a card first appeared keeps every card in place as uploads turn into jobs.
  return out.sort((a, b) => b.at - a.at || (a.key < b.key ? -1 : 1));
}

function render() {
  renderQueued = false;
  if (!state.session) return;
  const list = $("jobs");
  const wanted = entries();
  const keys = new Set(wanted.map((entry) => entry.key));
  for (const [key, card] of cards) {
    if (!keys.has(key)) {
      card.el.remove();
      cards.delete(key);
    }
  }
  wanted.forEach((entry, index) => {
    let card = cards.get(entry.key);
    if (!card) {
      card = new JobCard(entry.key);
      cards.set(entry.key, card);
    }
    const download = entry.job ? state.downloads.get(entry.job.id) : undefined;
    card.update(cardView({ ...entry, download }));
    // Moving a node drops its focus, so only move the ones out of place.
    if (list.children[index] !== card.el) list.insertBefore(card.el, list.children[index] ?? null);
  });
  const loaded = state.jobsLoaded || wanted.length > 0;
  show($("jobs-loading"), !state.jobsLoaded && wanted.length === 0 && $("jobs-error").hidden);
  show($("jobs-empty"), loaded && wanted.length === 0);
  show(list, wanted.length > 0);
}

// ---- uploads

function chosenOptions() {
  const bitrate = $("bitrate").value;
  return bitrate ? { bitrate } : undefined;
}

function addFiles(files) {
  if (!state.session || !files.length) return;
  const addedAt = Date.now() / 1000;
  for (const [index, file] of [...files].entries()) {
    const upload = {
      id: nextUploadId,
      // Spread by a microsecond each so several files keep their picked order.
      addedAt: addedAt - index / 1e6,
      file,
      options: chosenOptions(),
      phase: "queued",
      jobId: null,
      target: null,
      sent: 0,
      meter: new RateMeter(),
      error: "",
      handle: null,
      cancelled: false,
      startedAt: 0,
      finishedAt: 0,
    };
    nextUploadId += 1;
    state.uploads.set(upload.id, upload);
  }
  announce(files.length === 1 ? `Uploading ${files[0].name}.` : `Uploading ${files.length} files.`);
  pumpUploads();
  render();
  poller.poke();
}

function pumpUploads() {
  let active = [...state.uploads.values()].filter((u) => ACTIVE_PHASES.has(u.phase)).length;
  for (const upload of state.uploads.values()) {
    if (active >= MAX_PARALLEL_FILES) break;
    if (upload.phase === "queued") {
      active += 1;
      runUpload(upload);
    }
  }
}

// upload-init hands back this API's own upload endpoint when storage takes the bytes through the
// functions. Send those to the API base this page already talks to, so a PUBLIC_URL spelled
// differently (localhost vs 127.0.0.1) cannot make the upload cross-origin.
function uploadUrl(url, jobId) {
  const own = `/function/jobs/${jobId}/upload`;
  try {
    const parsed = new URL(url, window.location.href);
    if (parsed.pathname.endsWith(own)) return api.url(own) + parsed.search;
  } catch {
    // Not a URL we can read; use it as given.
  }
  return url;
}

function targetUsable(upload) {
  return upload.target && upload.target.expires_at * 1000 > Date.now() + 60_000;
}

async function runUpload(upload) {
  const session = state.session;
  try {
    if (!upload.jobId || !targetUsable(upload)) {
      upload.phase = "init";
      render();
      const created = await api.uploadInit(session.token, upload.file, upload.options);
      upload.jobId = created.job_id;
      upload.target = created.upload;
      if (upload.cancelled) throw Object.assign(new Error("upload cancelled"), { aborted: true });
    }
    upload.phase = "uploading";
    upload.sent = 0;
    upload.meter = new RateMeter();
    upload.startedAt = performance.now();
    upload.meter.add(0, upload.startedAt);
    render();
    const target = { ...upload.target, url: uploadUrl(upload.target.url, upload.jobId) };
    upload.handle = transfer(upload.file, target, (sent) => {
      upload.sent = sent;
      upload.meter.add(sent);
      scheduleRender();
    });
    await upload.handle.promise;
    upload.handle = null;
    upload.finishedAt = performance.now();
    upload.phase = "completing";
    render();
    await api.complete(session.token, upload.jobId);
    upload.phase = "done";
  } catch (error) {
    upload.handle = null;
    if (endSessionOn401(error, session)) return;
    if (error.aborted || upload.cancelled) {
      upload.phase = "cancelled";
    } else {
      const refused = !upload.jobId && error instanceof ApiError && error.status >= 400 && error.status < 500;
      upload.phase = refused ? "refused" : "failed";
      upload.error = error.message;
      announce(`${upload.file.name}: ${error.message}`);
    }
  } finally {
    if (state.session === session) {
      pumpUploads();
      render();
      poller.poke();
    }
  }
}

function cancelUpload(upload) {
  upload.cancelled = true;
  if (upload.phase === "queued") upload.phase = "cancelled";
  upload.handle?.abort();
  render();
}

function retryUpload(upload) {
  upload.cancelled = false;
  upload.error = "";
  upload.phase = "queued";
  pumpUploads();
  render();
  poller.poke();
}

function dismissUpload(upload) {
  state.uploads.delete(upload.id);
  if (upload.jobId) state.dismissed.add(upload.jobId);
  render();
  $("jobs-title").focus();
}

// ---- downloads

function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the blob once the click is handled; free it a little later.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function downloadJob(job) {
  const session = state.session;
  if (!job.mp3 || state.downloads.get(job.id)?.error === "") return;
  const progress = { received: 0, total: job.mp3.size || 0, error: "" };
  state.downloads.set(job.id, progress);
  render();
  try {
    const blob = await api.download(session.token, job.id, (received, total) => {
      progress.received = received;
      progress.total = total || progress.total;
      scheduleRender();
    });
    if (state.session !== session) return;
    saveBlob(blob, job.mp3.filename);
    state.downloads.delete(job.id);
    announce(`Saved ${job.mp3.filename}.`);
  } catch (error) {
    if (endSessionOn401(error, session)) return;
    progress.error = error.message;
  }
  render();
}

// ---- wiring

function onCardAction(event) {
  const button = event.target.closest("button[data-action]");
  const item = button?.closest("li[data-key]");
  if (!button || !item) return;
  const key = item.dataset.key;
  const upload = key.startsWith("u") ? state.uploads.get(Number(key.slice(1))) : undefined;
  const jobId = upload ? upload.jobId : key.slice(1);
  const job = state.jobs.find((j) => j.id === jobId);
  const action = button.dataset.action;
  if (action === "download" && job) downloadJob(job);
  else if (action === "cancel" && upload) cancelUpload(upload);
  else if (action === "retry" && upload) retryUpload(upload);
  else if (action === "dismiss" && upload) dismissUpload(upload);
}

function hasFiles(event) {
  return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
}

function wireDragAndDrop() {
  const zone = $("drop-zone");
  let depth = 0;
  // The whole window takes the drop, so a file that misses the zone is not opened by the browser.
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event) || !state.session) return;
    depth += 1;
    zone.classList.add("dragging");
  });
  window.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) zone.classList.remove("dragging");
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = state.session ? "copy" : "none";
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    addFiles(event.dataTransfer.files);
  });
}

function init() {
  $("auth-form").addEventListener("submit", onAuthSubmit);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", onModeChange);
  }
  $("sign-out").addEventListener("click", () => signOut());
  $("choose-files").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", (event) => {
    addFiles(event.target.files);
    event.target.value = ""; // so choosing the same file again still counts as a change
  });
  $("refresh").addEventListener("click", () => poller.poke());
  $("jobs-retry").addEventListener("click", () => poller.poke());
  $("jobs").addEventListener("click", onCardAction);
  wireDragAndDrop();
  window.addEventListener("beforeunload", (event) => {
    if ([...state.uploads.values()].some((u) => ACTIVE_PHASES.has(u.phase))) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  onModeChange();
  const { session, expired } = loadSession();
  if (session) signIn(session);
  else showSignedOut(expired ? EXPIRED : "");
}

init();

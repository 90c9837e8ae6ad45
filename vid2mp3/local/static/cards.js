// One card per file: what a job (and this tab's upload of it) looks like. `cardView` decides
// what to say; `JobCard` puts it on the page, touching only what changed so a focused button
// keeps its focus while the list updates every second.

import {
  formatBytes,
  formatDuration,
  formatSpeed,
  formatTimeLeft,
  formatWhen,
} from "./format.js";

const ACTIONS = [
  ["download", "Download MP3", "primary"],
  ["cancel", "Cancel upload", "secondary"],
  ["retry", "Try again", "primary"],
  ["dismiss", "Dismiss", "secondary"],
];

function percent(value, max) {
  return max > 0 ? Math.min(100, Math.floor((value / max) * 100)) : 0;
}

function uploadProgressText(upload) {
  const parts = [`${formatBytes(upload.sent)} of ${formatBytes(upload.file.size)}`];
  const rate = upload.meter.rate();
  if (rate !== null && rate > 0) {
    parts.push(formatSpeed(rate));
    parts.push(formatTimeLeft((upload.file.size - upload.sent) / rate));
  } else {
    parts.push("measuring speed…");
  }
  return parts.join(" · ");
}

function uploadedText(upload) {
  const seconds = (upload.finishedAt - upload.startedAt) / 1000;
  const took = seconds < 1 ? "under a second" : `${Math.round(seconds)} s`;
  return `Uploaded ${formatBytes(upload.file.size)} in ${took}.`;
}

// A card's content while this tab's upload is not (or not yet successfully) finished.
function localUploadView(upload, view) {
  view.meta = `${formatBytes(upload.file.size)} · ${upload.file.type || "unknown type"}`;
  switch (upload.phase) {
    case "queued":
      return { ...view, state: "waiting", badge: "Waiting", detail: "Starts when an earlier upload finishes.", actions: ["cancel"] };
    case "init":
      return { ...view, state: "uploading", badge: "Starting", detail: "Preparing the upload…", progress: { value: null, label: "Upload progress", text: "" }, actions: ["cancel"] };
    case "uploading":
      return {
        ...view,
        state: "uploading",
        badge: "Uploading",
        progress: { value: upload.sent, max: upload.file.size, label: "Upload progress", text: `${percent(upload.sent, upload.file.size)}%` },
        detail: uploadProgressText(upload),
        actions: ["cancel"],
      };
    case "completing":
      return { ...view, state: "uploading", badge: "Uploading", progress: { value: 1, max: 1, label: "Upload progress", text: "100%" }, detail: `${uploadedText(upload)} Starting the conversion…` };
    case "refused":
      return { ...view, state: "failed", badge: "Not accepted", error: upload.error, actions: ["dismiss"] };
    case "failed":
      return { ...view, state: "failed", badge: "Upload failed", error: upload.error, detail: "Nothing was converted. Try again, or dismiss it.", actions: ["retry", "dismiss"] };
    case "cancelled":
      return { ...view, state: "cancelled", badge: "Cancelled", detail: "Upload cancelled; the file was not converted.", actions: ["dismiss"] };
    default:
      return { ...view, state: "waiting", badge: "Queued", detail: "Waiting for a converter…", progress: { value: null, label: "Conversion progress", text: "" } };
  }
}

function summaryView(job) {
  if (job.summary_status === "done" && job.summary) {
    return {
      category: job.category || "",
      text: job.summary,
      note: job.context_truncated ? "Summarized from the first part of the recording; it was too long to read whole." : "",
    };
  }
  if (job.summary_status === "skipped") {
    return { category: "", text: "", note: `No summary: ${job.summary_reason || "summaries are not set up on this service"}` };
  }
  if (job.summary_status === "failed") {
    return { category: "", text: "", note: `The summary could not be written: ${job.summary_reason || "unknown reason"}` };
  }
  return null;
}

function serverJobView(job, view) {
  view.meta = `${formatBytes(job.size)} video · added ${formatWhen(job.created_at)}`;
  if (job.mp3) {
    const bits = [`MP3 ${formatDuration(job.mp3.duration)}`, formatBytes(job.mp3.size)];
    if (job.mp3.bitrate) bits.push(`${Math.round(job.mp3.bitrate / 1000)} kbps`);
    view.mp3 = bits.join(" · ");
  }
  switch (job.state) {
    case "awaiting_upload":
      return { ...view, state: "cancelled", badge: "Not uploaded", detail: "This upload did not finish. Choose the file again to convert it." };
    case "uploaded":
      return { ...view, state: "waiting", badge: "Queued", detail: "Waiting for a converter…", progress: { value: null, label: "Conversion progress", text: "" } };
    case "converting":
      return {
        ...view,
        state: "converting",
        badge: "Converting",
        progress: { value: job.progress, max: 100, label: "Conversion progress", text: `${job.progress}%` },
        detail: "Extracting the sound…",
      };
    case "converted":
      return {
        ...view,
        state: "ready",
        badge: "MP3 ready",
        detail: job.summary_status === "pending" ? "Writing a summary of what is said…" : "",
        summary: summaryView(job),
        actions: ["download"],
      };
    case "completed":
      return { ...view, state: "done", badge: "Done", summary: summaryView(job), actions: ["download"] };
    case "failed":
      return {
        ...view,
        state: "failed",
        badge: "Failed",
        error: job.error || "The conversion failed.",
        detail: "Check that the file plays on your computer, then upload it again.",
      };
    default:
      return { ...view, state: "waiting", badge: job.state };
  }
}

// Everything one card shows, from the server's job and/or this tab's upload and download.
export function cardView({ job, upload, download }) {
  const view = {
    title: job?.filename ?? upload.file.name,
    state: "waiting",
    badge: "",
    meta: "",
    mp3: "",
    progress: null,
    detail: "",
    error: "",
    summary: null,
    actions: [],
    downloading: null,
    notice: "",
  };
  let result;
  // A poll answered before this tab's "complete" call may still say awaiting_upload.
  if (upload && (upload.phase !== "done" || !job || job.state === "awaiting_upload")) {
    result = localUploadView(upload, view);
  } else {
    result = serverJobView(job, view);
    if (upload?.phase === "done" && !["completed", "failed", "converted"].includes(job.state)) {
      result.meta = `${result.meta} · ${uploadedText(upload)}`;
    }
  }
  if (download) {
    if (download.error) result.notice = `Download failed: ${download.error}`;
    else result.downloading = download.total ? `Downloading… ${percent(download.received, download.total)}%` : "Downloading…";
  }
  return result;
}

function element(tag, className, parent) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  parent?.append(el);
  return el;
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

export class JobCard {
  constructor(key) {
    this.key = key;
    this.el = element("li", "job");
    this.el.dataset.key = key;
    const head = element("div", "job-head", this.el);
    this.title = element("h3", "job-name", head);
    this.title.id = `title-${key}`;
    this.badge = element("span", "badge", head);
    this.meta = element("p", "job-meta", this.el);
    this.mp3 = element("p", "job-mp3", this.el);
    this.progressRow = element("div", "job-progress", this.el);
    this.progress = element("progress", "", this.progressRow);
    this.progressText = element("span", "job-progress-text", this.progressRow);
    this.error = element("p", "job-error", this.el);
    this.detail = element("p", "job-detail", this.el);
    this.summary = element("div", "job-summary", this.el);
    this.category = element("p", "chip", this.summary);
    this.summaryText = element("p", "job-summary-text", this.summary);
    this.note = element("p", "job-note", this.el);
    this.notice = element("p", "job-notice", this.el);
    this.notice.setAttribute("role", "alert");
    this.actions = element("div", "job-actions", this.el);
    this.buttons = {};
    for (const [action, label, kind] of ACTIONS) {
      const button = element("button", `button ${kind} small`, this.actions);
      button.type = "button";
      button.dataset.action = action;
      button.dataset.label = label;
      button.textContent = label;
      button.setAttribute("aria-describedby", this.title.id);
      button.hidden = true;
      this.buttons[action] = button;
    }
  }

  update(view) {
    this.el.dataset.state = view.state;
    setText(this.title, view.title);
    setText(this.badge, view.badge);
    setText(this.meta, view.meta);
    setText(this.mp3, view.mp3);
    setText(this.detail, view.detail);
    setText(this.error, view.error);
    setText(this.notice, view.notice);

    this.progressRow.hidden = !view.progress;
    if (view.progress) {
      const { value, max, label, text } = view.progress;
      this.progress.setAttribute("aria-label", label);
      if (value === null) {
        this.progress.removeAttribute("value");
      } else {
        if (this.progress.max !== max) this.progress.max = max;
        this.progress.value = value;
      }
      setText(this.progressText, text);
    }

    this.summary.hidden = !(view.summary && (view.summary.text || view.summary.category));
    setText(this.category, view.summary?.category ?? "");
    setText(this.summaryText, view.summary?.text ?? "");
    setText(this.note, view.summary?.note ?? "");

    for (const [action, button] of Object.entries(this.buttons)) {
      button.hidden = !view.actions.includes(action);
    }
    const download = this.buttons.download;
    const label = view.downloading ?? download.dataset.label;
    if (download.textContent !== label) download.textContent = label;
    // aria-disabled, not disabled: a disabled button drops keyboard focus mid-download.
    download.setAttribute("aria-disabled", String(view.downloading !== null));
    this.actions.hidden = view.actions.length === 0;
  }
}

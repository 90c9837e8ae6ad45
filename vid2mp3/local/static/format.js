// How numbers read to a person; the same rules as vid2mp3/display.py so the emails, the CLI and
// this page agree.

const UNITS = ["bytes", "KB", "MB", "GB"];

export function formatBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n) || n < 0) return "unknown";
  let value = n;
  for (const unit of UNITS) {
    if (value < 1024 || unit === "GB") {
      return unit === "bytes" ? `${Math.round(value)} bytes` : `${value.toFixed(1)} ${unit}`;
    }
    value /= 1024;
  }
  return "unknown";
}

export function formatDuration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) return "unknown";
  const total = Math.round(seconds);
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

export function formatSpeed(bytesPerSecond) {
  return `${formatBytes(bytesPerSecond)}/s`;
}

export function formatTimeLeft(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return "less than a second left";
  if (seconds < 60) return `${Math.ceil(seconds)} s left`;
  if (seconds < 3600) return `${Math.ceil(seconds / 60)} min left`;
  const hours = Math.floor(seconds / 3600);
  return `${hours} h ${Math.ceil((seconds % 3600) / 60)} min left`;
}

const WHEN = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatWhen(unixSeconds) {
  if (typeof unixSeconds !== "number") return "";
  return WHEN.format(new Date(unixSeconds * 1000));
}

// Speed over the last few seconds, so a stall shows quickly and one burst does not lie for long.
export class RateMeter {
  constructor(windowMs = 5000) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  add(bytes, now = performance.now()) {
    this.samples.push({ t: now, bytes });
    while (this.samples.length > 2 && now - this.samples[0].t > this.windowMs) {
      this.samples.shift();
    }
  }

  // Bytes per second, or null until there is enough to measure.
  rate() {
    if (this.samples.length < 2) return null;
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.t - first.t) / 1000;
    return seconds >= 0.3 ? (last.bytes - first.bytes) / seconds : null;
  }
}

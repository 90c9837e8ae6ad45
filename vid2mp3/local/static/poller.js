// Calls `tick` again and again: every second while something is moving, backing off while
// nothing is, backing off harder after errors, and not at all while the page is hidden.

export class Poller {
  // tick(): resolves "busy" or "idle", rejects on failure.
  // onError(error, retryInMs) / onSuccess(): what the page shows about it.
  constructor(tick, { onError = () => {}, onSuccess = () => {} } = {}) {
    this.tick = tick;
    this.onError = onError;
    this.onSuccess = onSuccess;
    this.busyDelay = 1000;
    this.idleDelays = { first: 3000, max: 30000 };
    this.errorDelays = { first: 2000, max: 60000 };
    this.idleDelay = this.idleDelays.first;
    this.errorDelay = this.errorDelays.first;
    this.timer = null;
    this.running = false;
    this.inFlight = false;
    this.again = false;
    this.onVisibility = () => {
      if (document.hidden) this.clearTimer();
      else this.now();
    };
  }

  start() {
    if (this.running) return;
    this.running = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.now();
  }

  stop() {
    this.running = false;
    this.clearTimer();
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  // Something changed here (an upload started or finished): look now and poll fast again.
  poke() {
    this.idleDelay = this.idleDelays.first;
    this.now();
  }

  clearTimer() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  async now() {
    this.clearTimer();
    if (!this.running || document.hidden) return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    let delay;
    try {
      const activity = await this.tick();
      this.errorDelay = this.errorDelays.first;
      if (activity === "busy") {
        this.idleDelay = this.idleDelays.first;
        delay = this.busyDelay;
      } else {
        delay = this.idleDelay;
        this.idleDelay = Math.min(this.idleDelay * 2, this.idleDelays.max);
      }
      if (this.running) this.onSuccess();
    } catch (error) {
      delay = this.errorDelay;
      this.errorDelay = Math.min(this.errorDelay * 2, this.errorDelays.max);
      if (this.running) this.onError(error, delay);
    } finally {
      this.inFlight = false;
    }
    if (!this.running) return;
    if (this.again) {
      this.again = false;
      this.now();
    } else if (!document.hidden) {
      this.timer = setTimeout(() => this.now(), delay);
    }
  }
}

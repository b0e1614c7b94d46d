/**
 * Coalescing work into animation frames: many events, one DOM update per frame.
 * @module frame
 */

/**
 * Calls `callback` once per animation frame while work is scheduled. Browsers pause frames in
 * hidden tabs, so a timer (`fallbackMs`) runs the callback if no frame comes: queues never
 * grow without bound.
 */
export class FrameScheduler {
  /**
   * @param {() => void} callback
   * @param {{fallbackMs?: number}} [options]
   */
  constructor(callback, { fallbackMs = 250 } = {}) {
    this.callback = callback;
    this.fallbackMs = fallbackMs;
    this.pending = false;
    this.frame = 0;
    this.timer = 0;
    this.run = this.run.bind(this);
  }

  /** Ask for one call at the next frame (repeated asks before it are merged). */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    this.frame = requestAnimationFrame(this.run);
    this.timer = setTimeout(this.run, this.fallbackMs);
  }

  /** Run now if scheduled (used by the frame, the timer, or a caller that needs it done). */
  run() {
    if (!this.pending) return;
    this.pending = false;
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.callback();
  }

  /** Drop a scheduled call. */
  cancel() {
    this.pending = false;
    cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
  }
}

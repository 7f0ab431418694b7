// listr2's default renderer, drawing frames at most 5 a second and never more than a tenth of the
// time. listr2 redraws the whole tree on every task event and every spinner tick, and each draw
// wraps every line twice (its own wrap and log-update's; wrap-ansi measures a row again for each
// of its words with string-width). A draw blocks the event loop the run's tasks share. Measured
// (`run up` of 2 containers, init: script, on a terminal; quiet host): listr2's own pace 14.2 and
// 16.4 s of CPU, 19.1 and 22.8 s of wall time; these frames 3.5 and 2.6 s of CPU, 7.1 and 4.0 s;
// the same run with --json 3.0 s and 4.4 s. On a busy host (load 20-40) listr2's pace made it
// 112-300 s against 28-38 s. Events between two frames show in the next one; the whole tree is
// drawn when the run ends.
import { DefaultRenderer } from "listr2";

/** The shortest time between two frames (the spinner turns at 5 frames a second). */
export const FRAME_MS = 200;
/** A frame that took t ms to draw is followed by at least SHARE × t ms of the run's own work. */
export const SHARE = 9;

export class FramedRenderer extends DefaultRenderer {
  private lastFrame = Number.NEGATIVE_INFINITY;
  private gap = FRAME_MS;
  private nextFrame: NodeJS.Timeout | undefined;

  override update(): void {
    const wait = this.lastFrame + this.gap - Date.now();
    if (wait <= 0) this.draw();
    else this.nextFrame ??= setTimeout(() => this.draw(), wait);
  }

  override end(): void {
    clearTimeout(this.nextFrame);
    this.nextFrame = undefined;
    super.end();
  }

  private draw(): void {
    clearTimeout(this.nextFrame);
    this.nextFrame = undefined;
    const t0 = Date.now();
    super.update();
    this.lastFrame = Date.now();
    this.gap = Math.max(FRAME_MS, SHARE * (this.lastFrame - t0));
  }
}

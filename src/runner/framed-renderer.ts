// listr2's default renderer, drawing frames at most 5 a second and never more than a tenth of the
// time. listr2 redraws the whole tree on every task event and every spinner tick, and each draw
// wraps every line twice (its own wrap and log-update's; wrap-ansi measures a row again for each
// of its words with string-width). A draw blocks the event loop the run's tasks share. Measured
// (`run up` of 2 containers, init: script, on a terminal; quiet host): listr2's own pace 14.2 and
// 16.4 s of CPU, 19.1 and 22.8 s of wall time; these frames 3.5 and 2.6 s of CPU, 7.1 and 4.0 s;
// the same run with --json 3.0 s and 4.4 s. On a busy host (load 20-40) listr2's pace made it
// 112-300 s against 28-38 s. Events between two frames show in the next one; the whole tree is
// drawn when the run ends. A task list that appeared since the last frame is drawn at once: listr2
// learns a list's options (collapseSubtasks) only by drawing it, and a collapsed group whose steps
// began and ended between two frames would show them all once done.
import {
  DefaultRenderer,
  type ListrDefaultRendererOptions,
  type ListrDefaultRendererTask,
  type ListrEventManager,
} from "listr2";

/** The shortest time between two frames (the spinner turns at 5 frames a second). */
export const FRAME_MS = 200;
/** A frame that took t ms to draw is followed by at least SHARE × t ms of the run's own work. */
export const SHARE = 9;

/** How many tasks the tree holds now (a new task list adds its tasks). */
const taskCount = (tasks: readonly { subtasks?: readonly unknown[] }[]): number =>
  tasks.reduce((n, t) => n + 1 + taskCount((t.subtasks ?? []) as { subtasks?: unknown[] }[]), 0);

export class FramedRenderer extends DefaultRenderer {
  private lastFrame = Number.NEGATIVE_INFINITY;
  private gap = FRAME_MS;
  private nextFrame: NodeJS.Timeout | undefined;
  private drawnTasks = 0;

  constructor(
    private readonly roots: ListrDefaultRendererTask[],
    options: ListrDefaultRendererOptions,
    events: ListrEventManager,
  ) {
    super(roots, options, events);
  }

  override update(): void {
    const wait = this.lastFrame + this.gap - Date.now();
    if (wait <= 0 || taskCount(this.roots) !== this.drawnTasks) this.draw();
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
    this.drawnTasks = taskCount(this.roots);
    super.update();
    this.lastFrame = Date.now();
    this.gap = Math.max(FRAME_MS, SHARE * (this.lastFrame - t0));
  }
}

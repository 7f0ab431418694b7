// The terminal renderer draws at most one frame per FRAME_MS however many events come (listr2's own
// draws on each), waits longer after a frame that was slow to draw, always draws the last event,
// and draws nothing after the end.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DefaultRenderer } from "listr2";
import { FRAME_MS, FramedRenderer, SHARE } from "../../src/runner/framed-renderer.js";

test("a burst of events makes one frame now and one when the frame time is up; none after the end", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const draws = t.mock.method(DefaultRenderer.prototype, "update", () => undefined);
  const end = t.mock.method(DefaultRenderer.prototype, "end", () => undefined);
  // The renderer only keeps what it is given until render(): no terminal is touched here.
  const r = new FramedRenderer([], {}, undefined as never);
  for (let i = 0; i < 1000; i++) r.update();
  assert.equal(draws.mock.callCount(), 1, "the first event is drawn at once");
  t.mock.timers.tick(FRAME_MS - 1);
  assert.equal(draws.mock.callCount(), 1, "nothing more before the frame time");
  t.mock.timers.tick(1);
  assert.equal(draws.mock.callCount(), 2, "the events since are drawn once the frame time is up");
  t.mock.timers.tick(10 * FRAME_MS);
  assert.equal(draws.mock.callCount(), 2, "no event, no frame");
  // A quiet renderer draws the next event at once.
  r.update();
  assert.equal(draws.mock.callCount(), 3);
  r.update();
  r.end();
  t.mock.timers.tick(10 * FRAME_MS);
  assert.equal(draws.mock.callCount(), 3, "a frame pending at the end is not drawn after it");
  assert.equal(end.mock.callCount(), 1);
});

test("a frame that took long to draw is followed by SHARE times as long without one", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const slow = 100;
  // Drawing takes `slow` ms (a busy host).
  const draws = t.mock.method(DefaultRenderer.prototype, "update", () =>
    t.mock.timers.setTime(Date.now() + slow),
  );
  t.mock.method(DefaultRenderer.prototype, "end", () => undefined);
  const r = new FramedRenderer([], {}, undefined as never);
  r.update();
  assert.equal(draws.mock.callCount(), 1);
  r.update();
  t.mock.timers.tick(SHARE * slow - 1);
  assert.equal(draws.mock.callCount(), 1, "no frame within SHARE × the last one's time");
  t.mock.timers.tick(1);
  assert.equal(draws.mock.callCount(), 2);
  r.end();
});

test("a task list that appeared since the last frame is drawn at once (listr2 learns its options by drawing it)", (t) => {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const draws = t.mock.method(DefaultRenderer.prototype, "update", () => undefined);
  t.mock.method(DefaultRenderer.prototype, "end", () => undefined);
  const group = { subtasks: [] as unknown[] };
  const roots = [group];
  const r = new FramedRenderer(roots as never, {}, undefined as never);
  r.update();
  assert.equal(draws.mock.callCount(), 1);
  r.update();
  assert.equal(draws.mock.callCount(), 1, "within the frame time, no new task: no frame");
  // A group starts: its steps appear as a list of its own.
  group.subtasks.push({ subtasks: [] }, { subtasks: [] });
  r.update();
  assert.equal(draws.mock.callCount(), 2, "the new list is drawn at once");
  r.end();
});

import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { test } from 'node:test';
import { DrainController, type DrainProgress } from '../../src/drain/controller';

/** A controller on a clock the test moves, drawing the given numbers in turn. */
function controlled(draws: number[], strategy?: 'gradual' | 'immediate') {
  const clock = { now: 0 };
  let i = 0;
  const controller = new DrainController({ strategy, now: () => clock.now, random: () => draws[i++ % draws.length]! });
  return { controller, clock };
}

test('gradual: yes with probability elapsed/drainTime, always after the deadline', () => {
  const { controller, clock } = controlled([0.25, 0.75]);
  assert.equal(controller.shouldClose(), false, 'no before the drain');
  controller.start(1_000);
  assert.equal(controller.shouldClose(), false, 'at 0 ms nothing closes (draws 0.25)');
  clock.now = 500;
  assert.deepEqual([controller.shouldClose(), controller.shouldClose()], [false, true], '0.75 >= 0.5, 0.25 < 0.5');
  clock.now = 800;
  assert.deepEqual([controller.shouldClose(), controller.shouldClose()], [true, true]);
  clock.now = 1_000;
  assert.equal(controller.shouldClose(), true);
  controller.stop();
  assert.equal(controller.shouldClose(), false, 'no once called off');
});

test('gradual: a connection asked again keeps its draw for the whole drain', () => {
  const { controller, clock } = controlled([0.6, 0.1]);
  const connection = {};
  controller.start(1_000);
  clock.now = 500;
  for (let i = 0; i < 5; i++) assert.equal(controller.shouldClose(connection), false, '0.6 >= 0.5 every time');
  clock.now = 700;
  assert.equal(controller.shouldClose(connection), true);
  controller.stop();
  controller.start(1_000);
  clock.now = 1_200;
  assert.equal(controller.shouldClose(connection), true, 'a new drain draws anew (0.1)');
  controller.stop();
});

test('restart: a new drain from now with new draws, the old deadline gone; a bad time leaves the drain under way', async () => {
  const { controller, clock } = controlled([0.6, 0.1]);
  const connection = {};
  const events: string[] = [];
  controller.on('start', (ms) => events.push(`start ${ms}`)).on('stop', () => events.push('stop'));
  controller.restart(1_000);
  assert.deepEqual(events, ['start 1000'], 'not draining: a plain start');
  clock.now = 700;
  assert.equal(controller.shouldClose(connection), true, '0.6 < 0.7');
  controller.restart(30);
  assert.deepEqual(events, ['start 1000', 'stop', 'start 30']);
  assert.deepEqual([controller.draining, controller.overdue], [true, false]);
  assert.equal(controller.shouldClose(connection), false, 'elapsed 0 of the new drain, and a new draw (0.1)');
  assert.throws(() => controller.restart(-1), { code: 'BATON_INVALID_ARGUMENT', message: /drainMs/ });
  assert.deepEqual(events, ['start 1000', 'stop', 'start 30'], 'the drain under way goes on');
  const keepAlive = setTimeout(() => {}, 10_000); // the drain's own timer does not hold the loop
  await once(controller, 'deadline'); // the new deadline, 30 ms on (the first one, at 1000 ms, is gone)
  clearTimeout(keepAlive);
  assert.equal(controller.overdue, true);
  controller.stop();
});

test('immediate: always yes while draining', () => {
  const { controller } = controlled([0.99], 'immediate');
  assert.equal(controller.shouldClose(), false);
  controller.start(60_000);
  assert.equal(controller.shouldClose(), true);
  controller.stop();
});

test('the deadline fires once the drain time is over, and progress follows the connections', async () => {
  const controller = new DrainController();
  const progress: DrainProgress[] = [];
  controller.on('progress', (p) => progress.push(p));
  const a = new EventEmitter();
  const b = new EventEmitter();
  controller.track(a);
  controller.track(a);
  controller.track(b);
  assert.equal(controller.connections, 2);
  assert.equal(progress.length, 0, 'no progress events before the drain');
  controller.start(30);
  assert.equal(controller.draining, true);
  assert.throws(() => controller.start(30), { code: 'BATON_INVALID_STATE' });
  a.emit('close');
  const keepAlive = setTimeout(() => {}, 10_000); // the drain's own timer does not hold the loop
  await once(controller, 'deadline');
  clearTimeout(keepAlive);
  assert.equal(controller.overdue, true);
  assert.equal(controller.shouldClose(), true);
  assert.deepEqual(
    progress.map((p) => [p.draining, p.connections]),
    [[true, 2], [true, 1], [true, 1]],
  );
  assert.equal(progress.at(-1)!.remainingMs, 0);
  controller.stop();
  assert.deepEqual(controller.progress(), { draining: false, connections: 1, drainMs: 30, elapsedMs: 0, remainingMs: 0 });
});

test('arguments are validated', () => {
  assert.throws(() => new DrainController({ strategy: 'later' as never }), { code: 'BATON_INVALID_ARGUMENT' });
  assert.throws(() => new DrainController({ random: 5 as never }), /functions/);
  const controller = new DrainController();
  assert.throws(() => controller.start(-1), /drainMs/);
  assert.throws(() => controller.start(1.5), /drainMs/);
  assert.throws(() => controller.track({} as never), /close/);
});

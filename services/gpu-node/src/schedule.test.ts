/** Schedule windows in the node's local time: weekdays, midnight crossing, next opening and closing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Schedule, localLabel, parseWindow } from './schedule.js';
import { parseNodeConfig } from './backends/registry.js';

// Local times (the node's clock): 2026-11-27 is a Friday.
const at = (day: number, h: number, m = 0) => new Date(2026, 10, day, h, m);
const FRI = 27;
const SAT = 28;
const SUN = 29;
const MON = 30;

test('parses weekday lists, ranges (wrapping the week too) and "all"', () => {
  assert.deepEqual([...parseWindow('mon-fri 23:00-07:30').days].sort(), [1, 2, 3, 4, 5]);
  assert.deepEqual(parseWindow('mon-fri 23:00-07:30').start, 23 * 60);
  assert.deepEqual(parseWindow('mon-fri 23:00-07:30').end, 24 * 60 + 7 * 60 + 30, 'a window crossing midnight ends on the next day');
  assert.deepEqual([...parseWindow('sat,sun all').days].sort(), [0, 6]);
  assert.deepEqual([...parseWindow('fri-mon 00:00-24:00').days].sort(), [0, 1, 5, 6]);
  assert.deepEqual([...parseWindow('Saturday 09:00-12:00').days], [6]);
  assert.deepEqual([...parseWindow('daily all').days].length, 7);
});

test('bad entries are refused with the entry named', () => {
  for (const bad of ['mon-fri', 'mo 10:00-11:00', 'mon 25:00-26:00', 'mon 10:60-11:00', 'mon 10:00-10:00', 'mon 24:00-01:00', 'funday all', 'mon 10-11', 'mon,,tue all']) {
    assert.throws(() => parseWindow(bad), (err: Error) => err.message.includes(`"${bad}"`), bad);
  }
});

test('a window crossing midnight belongs to the day it starts', () => {
  const s = Schedule.parse(['mon-fri 23:00-07:30']);
  assert.equal(s.isOpen(at(FRI, 22, 59)), false);
  assert.equal(s.isOpen(at(FRI, 23, 0)), true);
  assert.equal(s.isOpen(at(SAT, 7, 29)), true, "Friday's window runs into Saturday morning");
  assert.equal(s.isOpen(at(SAT, 7, 30)), false, 'the end is exclusive');
  assert.equal(s.isOpen(at(SAT, 23, 30)), false, 'no window starts on Saturday');
  assert.equal(s.isOpen(at(MON, 3, 0)), false, 'Sunday night is not a window: Monday 03:00 is closed');
  assert.equal(s.isOpen(at(MON, 23, 30)), true);
});

test('next opening and closing, across days and joined windows', () => {
  const s = Schedule.parse(['mon-fri 23:00-07:30', 'sat,sun all']);
  assert.deepEqual(s.nextOpening(at(FRI, 12, 0)), at(FRI, 23, 0));
  assert.equal(s.nextClosing(at(FRI, 12, 0)), undefined, 'closed now: nothing to close');
  // Friday night runs into Saturday's and Sunday's "all"; Monday's window only starts at 23:00.
  assert.deepEqual(s.nextClosing(at(FRI, 23, 30)), at(MON, 0, 0), 'Friday night, Saturday and Sunday are one stretch');
  assert.deepEqual(s.nextOpening(at(MON, 8, 0)), at(MON, 23, 0));
  assert.deepEqual(s.nextOpening(at(SAT, 8, 0)), at(SAT, 8, 0), 'open now: now');
  assert.equal(Schedule.parse(['daily all']).nextClosing(at(FRI, 1)), undefined, 'always open never closes');
  assert.equal(new Schedule([]).nextOpening(at(FRI, 1)), undefined, 'no window: never opens');
});

test('labels: the time of day within a day, else the weekday too', () => {
  assert.equal(localLabel(at(FRI, 23, 0), at(FRI, 12, 0)), '23:00');
  assert.equal(localLabel(at(MON, 9, 5), at(FRI, 12, 0)), 'Mon 09:05');
  assert.equal(localLabel(at(SUN, 7, 0), at(SAT, 8, 0)), '07:00');
});

test('node config: schedule (one entry or a list), idleOnly, onLeave; a bad window names its field', () => {
  const c = parseNodeConfig({ schedule: 'mon-fri 23:00-07:30', idleOnly: true, onLeave: 'requeue' });
  assert.deepEqual([c.schedule, c.idleOnly, c.onLeave], [['mon-fri 23:00-07:30'], true, 'requeue']);
  const d = parseNodeConfig({});
  assert.deepEqual([d.schedule, d.idleOnly, d.onLeave], [undefined, false, 'finish'], 'defaults: always, any GPU use, finish');
  assert.throws(() => parseNodeConfig({ schedule: ['sat,sun all', 'mon 7pm'] }), /schedule\.1.*"mon 7pm"/);
  assert.throws(() => parseNodeConfig({ onLeave: 'abandon' }), /onLeave/);
});

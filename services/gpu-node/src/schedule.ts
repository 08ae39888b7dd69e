/**
 * A node's working hours (node config `schedule`): time windows per weekday
 * in the node's local time, e.g. "mon-fri 23:00-07:30" or "sat,sun all".
 * A window that crosses midnight belongs to the day it starts on, so
 * "fri 23:00-07:30" runs from Friday night into Saturday morning.
 */

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const DAY_MINUTES = 24 * 60;

export interface ScheduleWindow {
  /** Weekdays it starts on (0 = Sunday, as Date.getDay()). */
  days: ReadonlySet<number>;
  /** Minutes after the start day's midnight; `end` > `start`, past 1440 when it crosses midnight. */
  start: number;
  end: number;
}

const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** "mon" or "monday" (any prefix of at least three letters). */
function dayIndex(name: string, entry: string): number {
  const i = name.length >= 3 ? DAY_NAMES.findIndex((d) => d.startsWith(name)) : -1;
  if (i < 0) throw new Error(`schedule "${entry}": "${name}" is not a weekday (mon, tue, wed, thu, fri, sat, sun)`);
  return i;
}

function parseDays(text: string, entry: string): Set<number> {
  if (text === 'daily' || text === '*') return new Set([0, 1, 2, 3, 4, 5, 6]);
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const [from, to, extra] = part.split('-');
    if (!from || extra !== undefined) throw new Error(`schedule "${entry}": "${part}" is not a weekday or a range like mon-fri`);
    const a = dayIndex(from, entry);
    const b = to === undefined ? a : dayIndex(to, entry);
    // A range may wrap around the week: fri-mon is fri, sat, sun, mon.
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (d === b) break;
    }
  }
  return out;
}

function parseTime(text: string, entry: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text);
  const minutes = m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
  if (!m || Number(m[2]) > 59 || minutes > DAY_MINUTES) throw new Error(`schedule "${entry}": "${text}" is not a time of day (HH:MM, 00:00 to 24:00)`);
  return minutes;
}

/** One schedule entry: "<days> <HH:MM-HH:MM | all>". */
export function parseWindow(entry: string): ScheduleWindow {
  const words = entry.trim().toLowerCase().split(/\s+/);
  if (words.length !== 2) throw new Error(`schedule "${entry}": expected "<days> <HH:MM-HH:MM>" or "<days> all", e.g. "mon-fri 23:00-07:30"`);
  const [daysText, timeText] = words as [string, string];
  const days = parseDays(daysText, entry);
  if (timeText === 'all') return { days, start: 0, end: DAY_MINUTES };
  const [from, to, extra] = timeText.split('-');
  if (!from || !to || extra !== undefined) throw new Error(`schedule "${entry}": "${timeText}" is not a range like 23:00-07:30`);
  const start = parseTime(from, entry);
  let end = parseTime(to, entry);
  if (start === DAY_MINUTES) throw new Error(`schedule "${entry}": a window cannot start at 24:00`);
  if (end === start) throw new Error(`schedule "${entry}": the window is empty (write "all" for the whole day)`);
  if (end < start) end += DAY_MINUTES;
  return { days, start, end };
}

/** Local-time date `dayOffset` days after `at`'s day, `minutes` after its midnight (DST-safe: Date normalises). */
function localAt(at: Date, dayOffset: number, minutes: number): Date {
  return new Date(at.getFullYear(), at.getMonth(), at.getDate() + dayOffset, 0, minutes);
}

export class Schedule {
  constructor(readonly windows: readonly ScheduleWindow[]) {}

  static parse(entries: readonly string[]): Schedule {
    return new Schedule(entries.map(parseWindow));
  }

  /** The window occurrences that start on the day `dayOffset` days from `at`'s. */
  private occurrences(at: Date, dayOffset: number): { start: Date; end: Date }[] {
    const weekday = localAt(at, dayOffset, 0).getDay();
    return this.windows.filter((w) => w.days.has(weekday)).map((w) => ({ start: localAt(at, dayOffset, w.start), end: localAt(at, dayOffset, w.end) }));
  }

  isOpen(at: Date): boolean {
    const t = at.getTime();
    // A window reaches at most one day past its start day.
    return [-1, 0].some((k) => this.occurrences(at, k).some((o) => o.start.getTime() <= t && t < o.end.getTime()));
  }

  /** When work may start again: `at` itself when open; undefined when the schedule has no window at all. */
  nextOpening(at: Date): Date | undefined {
    if (this.isOpen(at)) return at;
    const starts = [0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => this.occurrences(at, k).map((o) => o.start)).filter((s) => s > at);
    return starts.sort((a, b) => a.getTime() - b.getTime())[0];
  }

  /** When the current stretch of open windows ends; undefined when closed now or open for good. */
  nextClosing(at: Date): Date | undefined {
    if (!this.isOpen(at)) return undefined;
    const ends = [-1, 0, 1, 2, 3, 4, 5, 6, 7].flatMap((k) => this.occurrences(at, k).map((o) => o.end)).filter((e) => e > at);
    return ends.sort((a, b) => a.getTime() - b.getTime()).find((e) => !this.isOpen(e));
  }
}

/** How the node's owner reads a moment: "23:00" within the next day, else "Sat 09:00" (node local time). */
export function localLabel(when: Date, now: Date): string {
  const hm = `${String(when.getHours()).padStart(2, '0')}:${String(when.getMinutes()).padStart(2, '0')}`;
  if (when.getTime() - now.getTime() < DAY_MINUTES * 60_000) return hm;
  const day = DAYS[when.getDay()]!;
  return `${day[0]!.toUpperCase()}${day.slice(1)} ${hm}`;
}

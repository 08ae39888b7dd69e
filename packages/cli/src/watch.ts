/**
 * `nightshift watch`: follows one sweep to its end. Live over the
 * coordinator's SSE stream, with a slow poll underneath so a dropped stream
 * (or a proxy that buffers it) never stalls the bar. On a terminal it draws a
 * cli-progress bar with rate and ETA; otherwise it prints a line per change.
 */
import { Presets, SingleBar } from 'cli-progress';
import { ApiError, CliError, EXIT, type Client } from './client.js';
import { duration, FINAL, finished, sweepLine, type SweepView } from './format.js';

export interface WatchOptions {
  out: NodeJS.WritableStream & { isTTY?: boolean };
  /** No bar or lines: the caller prints JSON at the end. */
  quiet: boolean;
  pollMs?: number;
  /**
   * The caller's own stop: watching ends (rejecting with the abort reason)
   * when it aborts. Without one, Ctrl-C stops watching and exits 130.
   */
  signal?: AbortSignal;
}

export async function getSweep(client: Client, id: string): Promise<SweepView> {
  try {
    return await client.get<SweepView>(`/api/sweeps/${encodeURIComponent(id)}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw new CliError(`no sweep ${id} on the coordinator at ${client.base} (see \`nightshift status\`)`, EXIT.usage);
    throw err;
  }
}

export async function watchSweep(client: Client, id: string, o: WatchOptions): Promise<SweepView> {
  let sweep = await getSweep(client, id);
  const tty = Boolean(o.out.isTTY) && !o.quiet;
  const samples: { t: number; n: number }[] = [];

  /** The coordinator's rate when it has one, else ours over the last 30 s. */
  const rateOf = (s: SweepView): number | null => {
    const now = Date.now();
    samples.push({ t: now, n: finished(s) });
    while (samples.length > 2 && now - samples[0]!.t > 30_000) samples.shift();
    if (typeof s.rate === 'number' && s.rate > 0) return s.rate;
    const first = samples[0]!;
    const dt = (now - first.t) / 1000;
    return dt >= 1 && finished(s) > first.n ? (finished(s) - first.n) / dt : null;
  };
  const payload = (s: SweepView, rate: number | null) => {
    const eta = FINAL.has(s.status) ? 0 : (s.etaSeconds ?? (rate ? (s.total - finished(s)) / rate : null));
    return { status: s.status, rate: rate ? rate.toFixed(1) : '—', eta_text: FINAL.has(s.status) ? 'done' : duration(eta), failed: s.counts.failed };
  };

  const bar = tty
    ? new SingleBar(
        { format: `${id} [{bar}] {percentage}% | {value}/{total} images | {rate} img/s | ETA {eta_text} | {status}`, hideCursor: true, barsize: 28, stream: o.out, fps: 5 },
        Presets.shades_classic,
      )
    : undefined;
  bar?.start(sweep.total, finished(sweep), payload(sweep, null));

  let lastLine = '';
  let lastAt = 0;
  const show = (s: SweepView) => {
    sweep = s;
    const rate = rateOf(s);
    if (bar) {
      bar.setTotal(s.total);
      bar.update(finished(s), payload(s, rate));
      return;
    }
    // The final line is the caller's to print (with failures listed).
    if (o.quiet || FINAL.has(s.status)) return;
    const line = `${sweepLine(s)}${rate && !FINAL.has(s.status) ? ` at ${rate.toFixed(1)} img/s` : ''}`;
    if (line !== lastLine && Date.now() - lastAt >= 1_000) {
      o.out.write(`${line}\n`);
      lastLine = line;
      lastAt = Date.now();
    }
  };

  const ctrl = new AbortController();
  let resolveDone!: (s: SweepView) => void;
  let rejectDone!: (reason: unknown) => void;
  const done = new Promise<SweepView>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const seen = (s: SweepView) => {
    show(s);
    if (FINAL.has(s.status)) resolveDone(s);
  };
  seen(sweep);
  void client
    .events(
      `/api/events?sweep=${encodeURIComponent(id)}`,
      (e) => {
        const s = e.event === 'sweep' ? (e.data as { sweep?: SweepView }).sweep : undefined;
        if (s) seen({ ...sweep, ...s });
      },
      ctrl.signal,
    )
    .catch(() => {
      /* the poll below carries on */
    });
  const timer = setInterval(() => void getSweep(client, id).then(seen, () => {}), o.pollMs ?? 2_000);
  const onSigint = () => {
    bar?.stop();
    o.out.write(`\nstopped watching; sweep ${id} keeps running on the farm\n`);
    process.exit(130);
  };
  const onAbort = () => rejectDone(o.signal?.reason);
  if (o.signal) {
    if (o.signal.aborted) onAbort();
    else o.signal.addEventListener('abort', onAbort, { once: true });
  } else process.once('SIGINT', onSigint);
  try {
    const final = await done;
    return await getSweep(client, id).catch(() => final);
  } finally {
    process.off('SIGINT', onSigint);
    o.signal?.removeEventListener('abort', onAbort);
    clearInterval(timer);
    ctrl.abort();
    bar?.stop();
  }
}

// @ts-check
// Live updates: the coordinator's Server-Sent Events, read with fetch
// (EventSource cannot send the Authorization header).
import { askToken, authHeaders, getToken } from './auth.js';
import { $, sleep } from './dom.js';

/**
 * @typedef {import('./api-types.js').LiveEvents} LiveEvents
 * @typedef {{ open?: () => void } & { [K in keyof LiveEvents]?: (e: LiveEvents[K]) => void }} Handlers
 * `open` runs on every (re)connect so a page can resynchronise what it missed.
 */

/** Counts of events received, read by the browser tests as window.nightshiftStats. */
const stats = { events: /** @type {Record<string, number>} */ ({}), previews: 0 };
Object.assign(window, { nightshiftStats: stats });

/**
 * Follows GET /api/events{query} until the page goes away, reconnecting with backoff.
 * @param {string} query e.g. "?sweep=…", or ""
 * @param {Handlers} handlers
 * @returns {() => void} stops following
 */
export function openEvents(query, handlers) {
  let stopped = false;
  /** @type {AbortController | undefined} */
  let ctrl;
  let backoff = 1000;
  const live = $('#live');
  /** @param {boolean} on @param {string} text */
  const setLive = (on, text) => {
    live.className = `live ${on ? 'on' : 'off'}`;
    live.textContent = text;
  };
  /** @param {string} event @param {string} raw */
  const dispatch = (event, raw) => {
    /** @type {unknown} */
    let payload;
    try {
      payload = JSON.parse(raw);
    } catch {
      return;
    }
    stats.events[event] = (stats.events[event] || 0) + 1;
    if (event === 'progress' && typeof payload === 'object' && payload !== null && 'preview' in payload && payload.preview) stats.previews++;
    try {
      if (Object.hasOwn(handlers, event) && event !== 'open') {
        // The event name picks the payload's type (LiveEvents); the server's JSON is trusted to match it.
        const handler = /** @type {(e: unknown) => void} */ (handlers[/** @type {keyof LiveEvents} */ (event)]);
        handler?.(payload);
      }
    } catch (err) {
      console.error(err);
    }
  };
  void (async () => {
    while (!stopped) {
      ctrl = new AbortController();
      try {
        const res = await fetch(`/api/events${query}`, { headers: { ...authHeaders(), accept: 'text/event-stream' }, signal: ctrl.signal, cache: 'no-store' });
        if (res.status === 401) {
          if (!(await askToken(Boolean(getToken())))) {
            setLive(false, 'API token needed');
            return;
          }
          continue;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        setLive(true, 'live');
        backoff = 1000;
        handlers.open?.();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const frame = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let event = 'message';
            const data = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith('event:')) event = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (data.length) dispatch(event, data.join('\n'));
          }
        }
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      setLive(false, 'reconnecting…');
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 15_000);
    }
  })();
  const stop = () => {
    stopped = true;
    ctrl?.abort();
  };
  addEventListener('pagehide', stop);
  return stop;
}

/** A test's ear on a coordinator's live events (GET /api/events, Server-Sent Events). */

/**
 * Opens the event stream and, from then on, pushes every event's JSON into
 * `into` until `signal` aborts. Resolves once the stream is open (so what
 * happens next is heard); throws when the coordinator does not answer 200.
 */
export async function collectEvents(apiUrl: string, into: Record<string, unknown>[], signal: AbortSignal, headers: Record<string, string> = {}): Promise<void> {
  const res = await fetch(`${apiUrl}/api/events`, { signal, headers });
  if (res.status !== 200 || !res.body) throw new Error(`GET /api/events answered HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trimStart())
            .join('\n');
          if (data) into.push(JSON.parse(data) as Record<string, unknown>);
        }
      }
    } catch {
      // aborted at the end of the run
    }
  })();
}

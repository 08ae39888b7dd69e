/**
 * What a webhook delivery sends (issue 16): the body per format, its
 * signature, and which hosts a webhook may target. Pure functions; the
 * worker (webhooks-worker.ts) sends, the routes (webhooks-routes.ts) validate.
 *
 * Signature (the contract): `X-Nightshift-Signature: sha256=HEX(HMAC_SHA256(secret, body))`,
 * with `X-Nightshift-Timestamp` (the attempt's Unix seconds). The JSON body
 * carries the same moment as `sentAt`, inside what is signed, so a receiver
 * can refuse a replayed request without trusting an unsigned header.
 */
import { createHmac } from 'node:crypto';
import type { DeliveryRow, WebhookEventData, WebhookFormat } from './store/webhooks.js';

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** "7 h 12 m", "3 m 5 s", "42 s". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h} h ${m} m`;
  if (m > 0) return `${m} m ${s} s`;
  return `${s} s`;
}

const n = (x: number) => x.toLocaleString('en-US');

/** A one-line message and a short title for chat and push services. */
export function message(event: DeliveryRow['event'], data: WebhookEventData): { title: string; text: string } {
  if ('nodeId' in data) {
    return { title: 'Nightshift: node down', text: `Node *${data.name}* down: ${data.why} (${n(data.requeued)} jobs requeued)` };
  }
  const c = data.counts;
  const verb = event === 'sweep.failed' ? 'failed' : event === 'sweep.cancelled' ? 'was cancelled' : 'finished';
  const parts = [`${n(c.done + c.skipped)} images`, `${n(c.failed)} failed`];
  if (c.cancelled) parts.push(`${n(c.cancelled)} cancelled`);
  parts.push(formatDuration(data.durationMs));
  return { title: `Nightshift: sweep ${verb === 'was cancelled' ? 'cancelled' : verb}`, text: `Sweep *${data.name}* ${verb}: ${parts.join(', ')}` };
}

export interface WebhookRequest {
  headers: Record<string, string>;
  body: string;
}

/** The request for one attempt of a delivery; `timestamp` is Unix seconds (a new one per attempt). */
export function webhookRequest(d: Pick<DeliveryRow, 'event' | 'event_id' | 'data_json' | 'created_at'>, format: WebhookFormat, secret: string, timestamp: number): WebhookRequest {
  const data = JSON.parse(d.data_json) as WebhookEventData;
  const { title, text } = message(d.event, data);
  let body: string;
  let contentType = 'application/json';
  const extra: Record<string, string> = {};
  if (format === 'ntfy') {
    body = text;
    contentType = 'text/plain; charset=utf-8';
    extra.Title = title;
  } else if (format === 'discord') {
    body = JSON.stringify({ content: text });
  } else if (format === 'slack') {
    body = JSON.stringify({ text });
  } else {
    body = JSON.stringify({ id: d.event_id, event: d.event, createdAt: new Date(d.created_at).toISOString(), sentAt: new Date(timestamp * 1000).toISOString(), ...data, text });
  }
  const ts = String(timestamp);
  return {
    body,
    headers: {
      'content-type': contentType,
      'user-agent': 'nightshift-webhooks/1',
      'x-nightshift-event': d.event,
      'x-nightshift-event-id': d.event_id,
      'x-nightshift-timestamp': ts,
      'x-nightshift-signature': signature(secret, body),
      ...extra,
    },
  };
}

/**
 * Whether `url`'s host is on the allow-list (`host`, `host:port`, `*.domain`);
 * an empty list allows any host (a single-owner farm: webhooks may even target loopback).
 */
export function hostAllowed(url: URL, allow: readonly string[]): boolean {
  if (allow.length === 0) return true;
  const host = url.hostname.toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return allow.some((entry) => {
    const e = entry.toLowerCase();
    const [pattern, p] = e.startsWith('[') ? [e.slice(0, e.indexOf(']') + 1), e.slice(e.indexOf(']') + 2) || undefined] : (e.split(':') as [string, string | undefined]);
    if (p !== undefined && p !== port) return false;
    return pattern.startsWith('*.') ? host.endsWith(pattern.slice(1)) : host === pattern;
  });
}

export const MAX_URL_CHARS = 2_048;

/** Undefined when `raw` is a URL a webhook may target; otherwise why not. */
export function refuseUrl(raw: string, allow: readonly string[]): string | undefined {
  if (raw.length > MAX_URL_CHARS) return `url is longer than ${MAX_URL_CHARS} characters`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'url is not a valid URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'url must be http or https';
  if (url.username || url.password) return 'url must not carry credentials';
  if (!hostAllowed(url, allow)) return `url host ${url.host} is not in NIGHTSHIFT_WEBHOOK_ALLOW`;
  return undefined;
}

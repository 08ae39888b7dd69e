// @ts-check
// Calls to the coordinator: JSON with the bearer token (asked for on 401),
// readable errors, and the cookie session that lets <img> load images.
import { askToken, authHeaders, getToken } from './auth.js';

/** @typedef {import('./api-types.js').ErrorBody} ErrorBody */

export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} status HTTP status; 0 when the coordinator could not be reached
   * @param {ErrorBody | null} data the error body, when it was JSON
   */
  constructor(message, status, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

/**
 * @param {number} status
 * @param {unknown} data
 * @param {string} method
 * @param {string} path
 */
function errorMessage(status, data, method, path) {
  if (isErrorBody(data)) return data.error;
  if (status === 404) return `${method} ${path.split('?')[0]} is not available on this coordinator (404); it may be older than this dashboard.`;
  return `${method} ${path.split('?')[0]} failed with HTTP ${status}`;
}

/** @returns {data is ErrorBody} */
const isErrorBody = (/** @type {unknown} */ data) => typeof data === 'object' && data !== null && 'error' in data && typeof data.error === 'string';

/**
 * @typedef {object} RequestOptions
 * @property {string} [method]
 * @property {unknown} [body] sent as JSON
 * @property {string} [text] sent as text/yaml
 * @property {Blob} [file] sent as is, with its own type (an image upload)
 */

/**
 * JSON API call with the bearer token; asks for the token on 401 and retries.
 * The answer is trusted to be a T: api.js names T for each route.
 * @template T
 * @param {string} path
 * @param {RequestOptions} [options]
 * @returns {Promise<T>}
 */
export async function request(path, { method = 'GET', body, text, file } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...authHeaders() };
    /** @type {string | Blob | undefined} */
    let payload;
    if (file !== undefined) {
      headers['content-type'] = file.type || 'application/octet-stream';
      payload = file;
    } else if (text !== undefined) {
      headers['content-type'] = 'text/yaml';
      payload = text;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
    } catch {
      throw new ApiError('Cannot reach the coordinator. Is it still running?', 0, null);
    }
    if (res.status === 401 && attempt < 3) {
      const token = await askToken(Boolean(getToken()));
      if (!token) throw new ApiError('This coordinator needs its API token.', 401, null);
      await ensureFileSession();
      continue;
    }
    const type = res.headers.get('content-type') || '';
    /** @type {unknown} */
    const data = type.includes('json') ? await res.json().catch(() => null) : (await res.text(), null);
    if (!res.ok) throw new ApiError(errorMessage(res.status, data, method, path), res.status, isErrorBody(data) ? data : null);
    return /** @type {T} */ (data);
  }
}

// Images: <img> cannot send headers, so behind a token the coordinator issues
// a short-lived HttpOnly cookie valid only for /ui/files (see session.ts).
let imageAuth = false;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let sessionTimer;

/** Gets (or renews) the image cookie when the coordinator has a token. */
export async function ensureFileSession() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const res = await fetch('/ui/session', { method: 'POST', headers: authHeaders() }).catch(() => null);
    if (!res) return;
    if (res.status === 401) {
      if (!(await askToken(Boolean(getToken())))) return;
      continue;
    }
    /** @type {{ auth?: boolean }} */
    const data = await res.json().catch(() => ({}));
    imageAuth = Boolean(data.auth);
    clearTimeout(sessionTimer);
    if (imageAuth) sessionTimer = setTimeout(ensureFileSession, 25 * 60_000);
    return;
  }
}

/**
 * Maps an API file URL (/files/… or absolute) to the dashboard's image route.
 * @param {string | null | undefined} url
 */
export function fileSrc(url) {
  if (!url) return '';
  const u = new URL(url, location.origin);
  const m = /^\/files\/(.+)$/.exec(u.pathname);
  return m ? `/ui/files/${m[1]}` : url;
}

/** An image that fails behind a token may only need a fresh cookie: retry it once. */
export function retryFailedImages() {
  document.addEventListener(
    'error',
    (ev) => {
      const img = ev.target;
      if (!(img instanceof HTMLImageElement) || !imageAuth || img.dataset.retried || img.src.startsWith('data:')) return;
      img.dataset.retried = '1';
      void ensureFileSession().then(() => {
        const src = img.src;
        img.src = src;
      });
    },
    true,
  );
}

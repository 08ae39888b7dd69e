// @ts-check
// Every API route the dashboard calls, with the type of its answer
// (api-types.d.ts): a route or field renamed on the server shows up here.
import { enc } from './dom.js';
import { request } from './request.js';

/**
 * @typedef {import('./api-types.js').Sweep} Sweep
 * @typedef {import('./api-types.js').SweepDetail} SweepDetail
 * @typedef {import('./api-types.js').Job} Job
 * @typedef {import('./api-types.js').SpecDraft} SpecDraft
 * @typedef {import('./api-types.js').SpecPreview} SpecPreview
 * @typedef {import('./api-types.js').Submitted} Submitted
 * @typedef {import('./api-types.js').GalleryPage} GalleryPage
 * @typedef {import('./api-types.js').ImageDetail} ImageDetail
 * @typedef {import('./api-types.js').SearchPage} SearchPage
 * @typedef {import('./api-types.js').BestPage} BestPage
 * @typedef {import('./api-types.js').FarmNode} FarmNode
 * @typedef {import('./api-types.js').RemixAnswer} RemixAnswer
 * @typedef {'pause' | 'resume' | 'cancel'} SweepAction
 */

/** @returns {Promise<{ sweeps: Sweep[] }>} */
export const listSweeps = () => request('/api/sweeps');

/** @returns {Promise<SweepDetail>} */
export const getSweep = (/** @type {string} */ id) => request(`/api/sweeps/${enc(id)}`);

/**
 * Every job of a sweep: the API answers a page at a time (10,000 at most), so
 * the contact sheet of a big sweep asks until `nextOffset` is null.
 * @returns {Promise<{ jobs: Job[] }>}
 */
export async function listJobs(/** @type {string} */ id) {
  /** @type {Job[]} */
  const jobs = [];
  /** @type {number | null} */
  let offset = 0;
  while (offset !== null) {
    /** @type {{ jobs: Job[]; nextOffset: number | null }} */
    const page = await request(`/api/sweeps/${enc(id)}/jobs?offset=${offset}&limit=10000`);
    jobs.push(...page.jobs);
    offset = page.nextOffset;
  }
  return { jobs };
}

/**
 * Pause, resume or cancel a sweep; answers the sweep as it is now.
 * @param {string} id
 * @param {SweepAction} action
 * @returns {Promise<Sweep>}
 */
export const sweepAction = (id, action) => request(`/api/sweeps/${enc(id)}/${action}`, { method: 'POST' });

/**
 * @param {string} id
 * @param {number} priority
 * @returns {Promise<Sweep>}
 */
export const setPriority = (id, priority) => request(`/api/sweeps/${enc(id)}/priority`, { method: 'POST', body: { priority } });

/** @returns {Promise<Submitted>} */
export const submitSweep = (/** @type {SpecDraft} */ spec) => request('/api/sweeps', { method: 'POST', body: spec });

/**
 * What a spec expands to, from the form's spec or pasted YAML/JSON text.
 * @param {{ spec: SpecDraft } | { text: string }} what
 * @returns {Promise<SpecPreview>}
 */
export const previewSpec = (what) => request('/api/sweeps/preview', 'text' in what ? { method: 'POST', text: what.text } : { method: 'POST', body: what.spec });

/**
 * The spec that renders a PNG again, read from its metadata (Nightshift, A1111, ComfyUI, InvokeAI).
 * @param {Blob} png
 * @returns {Promise<RemixAnswer>}
 */
export const remixImage = (png) => request('/api/remix', { method: 'POST', file: png });

/**
 * An upscale batch of some images, or of a sweep's favorites.
 * @param {{ keys: string[] } | { sweep: string; favorites: boolean }} what
 * @returns {Promise<Submitted>}
 */
export const upscale = (what) => request('/api/upscale', { method: 'POST', body: what });

/** @returns {Promise<GalleryPage>} */
export const galleryPage = (/** @type {URLSearchParams} */ query) => request(`/api/gallery?${query}`);

/** @returns {Promise<ImageDetail>} */
export const imageDetail = (/** @type {string} */ renderKey) => request(`/api/gallery/${enc(renderKey)}`);

/** @returns {Promise<SearchPage>} */
export const search = (/** @type {URLSearchParams} */ query) => request(`/api/search?${query}`);

/**
 * A sweep's images ranked by the taste model learned from favorites.
 * @param {string} id
 * @param {number} k
 * @returns {Promise<BestPage>}
 */
export const bestOfSweep = (id, k) => request(`/api/sweeps/${enc(id)}/best?k=${k}`);

/**
 * Every image ranked by the taste model (the gallery's "Likely favorites").
 * @param {number} k
 * @returns {Promise<BestPage>}
 */
export const bestOverall = (k) => request(`/api/best?k=${k}`);

/**
 * @param {string} renderKey
 * @param {boolean} on
 * @returns {Promise<void>}
 */
export const setFavorite = async (renderKey, on) => {
  await request(`/api/favorites/${enc(renderKey)}`, { method: on ? 'PUT' : 'DELETE' });
};

/** @returns {Promise<{ nodes: FarmNode[] }>} */
export const listNodes = () => request('/api/nodes');

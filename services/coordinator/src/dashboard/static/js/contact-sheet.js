// @ts-check
// The sweep page's jobs as tiles: a contact sheet, or an X/Y grid with one
// dimension (an axis, the prompt or the seed) on rows and another on columns.
import { $, $$, closest, h } from './dom.js';
import { openImage } from './image-dialog.js';
import { fileSrc } from './request.js';

/**
 * @typedef {import('./api-types.js').Job} Job
 * @typedef {Omit<Job, 'state'> & { state: string; preview: string | null; step: number; total: number }} LiveJob
 * A job with what live events add: its state (any string the server sends), the last preview and step.
 * @typedef {{ key: string; label: string }} Dim
 */

/** The state a tile shows: a leased job is rendering; a skipped one was already done. */
export const tileState = (/** @type {string} */ s) => (s === 'leased' ? 'running' : s === 'skipped' ? 'done' : s);
/** @type {Record<string, string>} */
const STATE_TEXT = { queued: 'queued', running: 'rendering', done: 'done', failed: 'failed', cancelled: 'cancelled' };

/** @param {LiveJob} j */
const thumbOf = (j) => fileSrc(j.thumbUrl || `/files/thumbs/${j.renderKey}.webp`);

/** @param {LiveJob} j */
function label(j) {
  const st = tileState(j.state);
  const extra = st === 'running' && j.total ? ` ${Math.round((100 * j.step) / j.total)}%` : '';
  return `${j.prompt}, seed ${j.seed}: ${STATE_TEXT[st] || st}${extra}${st === 'failed' && j.error ? ` — ${j.error}` : ''}`;
}

/**
 * @param {HTMLElement} sheet where the tiles go
 * @param {() => { jobs: LiveJob[]; byId: Map<string, LiveJob>; prompts: string[] }} current the sweep's jobs (in order and by id) and its spec's prompts
 */
export function contactSheet(sheet, current) {
  /** Each job's tile on screen. @type {Map<string, HTMLLIElement>} */
  let els = new Map();
  let view = 'sheet';
  const rowsSel = $('#xy-rows', HTMLSelectElement);
  const colsSel = $('#xy-cols', HTMLSelectElement);

  /** @param {LiveJob} j */
  function tile(j) {
    const li = h('li', { class: 'tile', dataset: { job: j.id } });
    li.append(h('button', { type: 'button' }));
    paint(j, li);
    return li;
  }

  // Live events can come hundreds a second; tiles are repainted once per frame.
  /** @type {Set<LiveJob>} */
  const dirty = new Set();
  let frame = 0;
  /** @param {LiveJob} j */
  function schedule(j) {
    dirty.add(j);
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        for (const d of dirty) paint(d);
        dirty.clear();
      });
    }
  }

  /**
   * Brings one tile up to date with its job.
   * @param {LiveJob} j
   * @param {HTMLLIElement | undefined} li
   */
  function paint(j, li = els.get(j.id)) {
    if (!li) return;
    const st = tileState(j.state);
    const btn = $('button', HTMLButtonElement, li);
    li.dataset.state = st;
    btn.setAttribute('aria-label', label(j));
    let img = btn.querySelector('img');
    const want = st === 'done' ? thumbOf(j) : st === 'running' && j.preview ? j.preview : '';
    if (want) {
      if (!img) {
        btn.replaceChildren();
        img = h('img', { alt: '', decoding: 'async', loading: 'lazy', width: 128, height: 128 });
        btn.append(img, h('span', { class: 'step' }), h('span', { class: 'cap', text: `seed ${j.seed}` }));
      }
      if (img.getAttribute('src') !== want) img.setAttribute('src', want);
      li.dataset.img = want.startsWith('data:') ? 'preview' : 'thumb';
    } else {
      delete li.dataset.img;
      btn.replaceChildren(h('span', { class: 'state', text: st === 'failed' ? '✕' : st === 'running' ? 'rendering…' : STATE_TEXT[st] || st }), h('span', { class: 'step' }), h('span', { class: 'cap', text: `seed ${j.seed}` }));
      if (st === 'failed') btn.append(h('div', { class: 'err', role: 'tooltip', text: j.error || 'failed (no error recorded)' }));
    }
    li.title = st === 'failed' ? `Failed: ${j.error || 'no error recorded'}` : `${j.prompt} (seed ${j.seed})`;
    const step = btn.querySelector('.step');
    if (step instanceof HTMLElement) step.style.width = st === 'running' && j.total ? `${(100 * j.step) / j.total}%` : '0';
  }

  // ---------------------------------------------------------------- X/Y dimensions
  /** @returns {Dim[]} */
  function dims() {
    const { jobs, prompts } = current();
    /** @type {string[]} */
    const names = [];
    for (const j of jobs) for (const k of Object.keys(j.axes || {})) if (!names.includes(k)) names.push(k);
    const out = names.map((n) => ({ key: `axis:${n}`, label: n }));
    if (prompts.length > 1) out.push({ key: 'prompt', label: 'prompt' });
    out.push({ key: 'seed', label: 'seed' });
    return out;
  }
  /**
   * A job's value along a dimension.
   * @param {LiveJob} j
   * @param {string} key
   */
  function valueOf(j, key) {
    if (key === 'seed') return j.seed;
    if (key === 'prompt') {
      const { jobs, prompts } = current();
      return prompts[Math.floor(j.index / Math.max(1, jobs.length / prompts.length))] ?? '';
    }
    const v = j.axes?.[key.slice(5)];
    return v === undefined ? '' : v;
  }
  /** Offers the sweep's dimensions for rows and columns, keeping the choices that still exist. */
  function fillDimSelects() {
    const ds = dims();
    for (const [s, fallback] of /** @type {[HTMLSelectElement, number][]} */ ([[rowsSel, 0], [colsSel, 1]])) {
      const cur = s.value;
      s.replaceChildren(...ds.map((d) => h('option', { value: d.key, text: d.label })));
      s.value = ds.some((d) => d.key === cur) ? cur : (ds[Math.min(fallback, ds.length - 1)]?.key ?? '');
    }
  }

  /** @param {LiveJob[]} list */
  function tiles(list, attrs = {}) {
    const ul = h('ul', { class: 'tiles', ...attrs });
    for (const j of list) {
      const li = tile(j);
      els.set(j.id, li);
      ul.append(li);
    }
    return ul;
  }

  /** Draws every tile again, in the chosen view. */
  function render() {
    const { jobs } = current();
    els = new Map();
    if (!jobs.length) {
      sheet.replaceChildren(h('p', { class: 'muted', text: 'This sweep has no jobs.' }));
      return;
    }
    if (view === 'sheet') {
      sheet.replaceChildren(tiles(jobs, { 'aria-label': `${jobs.length} jobs` }));
      performance.mark('nightshift:sheet-rendered');
      return;
    }
    const rk = rowsSel.value;
    const ck = colsSel.value;
    const uniq = (/** @type {string} */ key) => [...new Set(jobs.map((j) => valueOf(j, key)))];
    const rowVals = uniq(rk);
    const colVals = uniq(ck);
    /** @type {Map<string, LiveJob[]>} */
    const cells = new Map();
    for (const j of jobs) {
      const k = `${rowVals.indexOf(valueOf(j, rk))}|${colVals.indexOf(valueOf(j, ck))}`;
      const cell = cells.get(k);
      if (cell) cell.push(j);
      else cells.set(k, [j]);
    }
    const name = (/** @type {string} */ key) => (key.startsWith('axis:') ? key.slice(5) : key);
    const show = (/** @type {string | number} */ v) => (v === '' ? '(none)' : String(v));
    const table = h(
      'table',
      {},
      h('caption', { class: 'sr-only', text: `Rows: ${name(rk)}; columns: ${name(ck)}` }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: `${name(rk)} \\ ${name(ck)}` }), colVals.map((v) => h('th', { scope: 'col', text: show(v) })))),
      h(
        'tbody',
        {},
        rowVals.map((rv, ri) => h('tr', {}, h('th', { scope: 'row', text: show(rv) }), colVals.map((_, ci) => h('td', {}, tiles(cells.get(`${ri}|${ci}`) || []))))),
      ),
    );
    sheet.replaceChildren(h('div', { class: 'xy' }, table));
  }

  // View switching.
  for (const r of $$('input[name=view]', HTMLInputElement)) {
    r.addEventListener('change', () => {
      view = r.value;
      $('#xy-controls').hidden = view !== 'xy';
      render();
    });
  }
  rowsSel.addEventListener('change', render);
  colsSel.addEventListener('change', render);

  sheet.addEventListener('click', (ev) => {
    const li = closest(ev, '.tile');
    if (!li) return;
    const j = current().byId.get(li.dataset.job ?? '');
    if (j && tileState(j.state) === 'done') openImage(j.renderKey, { prompt: j.prompt, seed: j.seed, thumbUrl: thumbOf(j) });
  });

  return { render, schedule, fillDimSelects };
}

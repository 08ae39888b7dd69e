// @ts-check
// Page: one sweep — its progress, actions, failures, and its jobs as a live
// contact sheet or X/Y grid (contact-sheet.js).
import { getSweep, listJobs, setPriority, sweepAction, upscale } from './api.js';
import { albumShareBar } from './album-share.js';
import { loadBestStrip } from './best-strip.js';
import { renderCost } from './sweep-cost.js';
import { contactSheet } from './contact-sheet.js';
import { $, closest, debounce, enc, h, messageOf, showMsg, toast } from './dom.js';
import { openEvents } from './events.js';
import { ApiError } from './request.js';
import { ACTION_WORDS, countsText, etaText, FINAL, isSweepAction, setBar } from './sweep-status.js';

/**
 * @typedef {import('./api-types.js').SweepDetail} SweepDetail
 * @typedef {import('./api-types.js').LiveEvents} LiveEvents
 * @typedef {import('./contact-sheet.js').LiveJob} LiveJob
 */

export function sweepPage() {
  const id = document.body.dataset.sweepId ?? '';
  const msg = $('#sweep-msg');
  $('#sweep-actions').after(albumShareBar(() => ({ sweep: id }), ''));
  /** @type {SweepDetail | null} */
  let sweep = null;
  /** @type {LiveJob[]} */
  let jobs = [];
  /** @type {Map<string, LiveJob>} */
  let byId = new Map();
  /** @type {Promise<void> | null} */
  let loading = null;
  /** @type {(() => void)[]} */
  let buffered = [];
  const sheet = contactSheet($('#sheet'), () => ({ jobs, byId, prompts: sweep?.spec?.prompts ?? [] }));

  function renderSummary() {
    if (!sweep) return;
    document.title = `${sweep.name} · Nightshift`;
    $('#crumb-name').textContent = sweep.name;
    $('#sweep-title').textContent = sweep.name;
    const badge = $('#sweep-status');
    badge.className = `badge ${sweep.status}`;
    badge.textContent = sweep.status;
    setBar($('#sweep-summary .bar'), sweep);
    $('#sweep-counts').textContent = `${countsText(sweep)} · ETA ${etaText(sweep)} · priority ${sweep.priority}`;
    // An older coordinator may send one string.
    const explain = Array.isArray(sweep.explain) ? sweep.explain : sweep.explain ? [String(sweep.explain)] : [];
    const explainEl = $('#sweep-explain');
    explainEl.hidden = !explain.length || FINAL.has(sweep.status);
    explainEl.textContent = explain.join(' ');
    const final = FINAL.has(sweep.status);
    $('#sweep-actions [data-action=pause]', HTMLButtonElement).disabled = final || sweep.status === 'paused';
    $('#sweep-actions [data-action=resume]', HTMLButtonElement).disabled = sweep.status !== 'paused';
    $('#sweep-actions [data-action=cancel]', HTMLButtonElement).disabled = final;
    const prio = $('#priority-input', HTMLInputElement);
    if (document.activeElement !== prio) prio.value = String(sweep.priority);
    renderCost(sweep.cost);
    const failed = sweep.failedJobs || [];
    $('#failed-section').hidden = !failed.length;
    $('#failed-list').replaceChildren(
      ...failed.map((f) => h('li', {}, h('strong', { text: `${f.prompt} (seed ${f.seed})` }), `: ${f.error || 'failed'}`, f.logTail ? h('pre', { text: f.logTail }) : '')),
    );
  }

  // Events that arrive while a snapshot loads are replayed on top of it.
  /** @param {LiveEvents['job']} e */
  function applyJob(e) {
    const j = byId.get(e.jobId);
    if (!j) return void reload();
    j.state = e.state;
    if (e.state === 'queued') {
      j.preview = null;
      j.step = 0;
    }
    sheet.schedule(j);
    if (e.state === 'failed') {
      refreshSweep();
      refreshErrors();
    }
  }
  /** @param {LiveEvents['progress']} e */
  function applyProgress(e) {
    const j = byId.get(e.jobId);
    if (!j || FINAL.has(j.state) || j.state === 'skipped') return;
    j.state = 'leased';
    j.step = e.step;
    j.total = e.total;
    if (e.preview) j.preview = `data:image/webp;base64,${e.preview}`;
    sheet.schedule(j);
  }
  /**
   * @template E
   * @param {(e: E) => void} fn
   * @returns {(e: E) => void}
   */
  const live = (fn) => (e) => (loading ? buffered.push(() => fn(e)) : fn(e));

  // Job events carry no error text; failed tiles get theirs from the job list.
  const refreshErrors = debounce(async () => {
    try {
      const data = await listJobs(id);
      for (const f of data.jobs) {
        const j = byId.get(f.id);
        if (j && f.state === 'failed' && j.error !== f.error) {
          j.error = f.error;
          sheet.schedule(j);
        }
      }
    } catch {
      /* the next event retries */
    }
  }, 500);

  const refreshSweep = debounce(async () => {
    try {
      const explainAndFailed = await getSweep(id);
      sweep = { ...sweep, ...explainAndFailed };
      renderSummary();
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  }, 300);

  /** Loads the sweep and its jobs afresh (once at a time). */
  async function reload() {
    if (loading) return loading;
    buffered = [];
    loading = (async () => {
      try {
        const [s, data] = await Promise.all([getSweep(id), listJobs(id)]);
        sweep = s;
        jobs = data.jobs.map((j) => ({ ...j, preview: null, step: 0, total: 0 }));
        byId = new Map(jobs.map((j) => [j.id, j]));
        sheet.fillDimSelects();
        renderSummary();
        sheet.render();
        showMsg(msg, '');
      } catch (err) {
        showMsg(msg, err instanceof ApiError && err.status === 404 ? `No sweep ${id} on this coordinator.` : messageOf(err), true);
      } finally {
        loading = null;
        const replay = buffered;
        buffered = [];
        for (const fn of replay) fn();
      }
    })();
    return loading;
  }

  // Actions.
  $('#sweep-actions').addEventListener('click', async (ev) => {
    const action = closest(ev, 'button[data-action]')?.dataset.action;
    if (!isSweepAction(action) || !sweep) return;
    if (action === 'cancel' && !confirm(`Cancel sweep “${sweep.name}”? Queued jobs will not run.`)) return;
    try {
      Object.assign(sweep, await sweepAction(id, action));
      renderSummary();
      showMsg(msg, `Sweep ${ACTION_WORDS[action]}.`);
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  });
  $('#priority-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = Number($('#priority-input', HTMLInputElement).value);
    if (!sweep) return;
    try {
      Object.assign(sweep, await setPriority(id, value));
      renderSummary();
      showMsg(msg, `Priority set to ${value}.`);
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  });
  // On request only: below 10 favorites the API answers 409, which a page load should not provoke.
  $('#best-load').addEventListener('click', () => void loadBestStrip(id));
  $('#upscale-favs').addEventListener('click', async () => {
    try {
      const res = await upscale({ sweep: id, favorites: true });
      showMsg(msg, `Upscaling ${res.jobs} favorite(s) as sweep ${res.id}.`);
      toast(`Upscale batch started (${res.jobs} images).`, { link: { href: `/ui/sweeps/${enc(res.id)}`, text: 'Open it' } });
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  });

  openEvents(`?sweep=${enc(id)}`, {
    open: reload,
    sweep: live((e) => {
      if (!e.sweep || !sweep) return;
      const ended = FINAL.has(e.sweep.status) && !FINAL.has(sweep.status);
      sweep = { ...sweep, ...e.sweep };
      renderSummary();
      // Sweep events carry no cost: read it again when the sweep ends (and every 30 s while it runs, below).
      if (ended) refreshSweep();
    }),
    job: live(applyJob),
    progress: live(applyProgress),
  });
  setInterval(() => sweep && renderSummary(), 5_000);
  setInterval(() => sweep && !FINAL.has(sweep.status) && refreshSweep(), 30_000);
}

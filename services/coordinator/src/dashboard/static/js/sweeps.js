// @ts-check
// Page: the sweeps list, with live progress and per-row actions.
import { listSweeps, setPriority, sweepAction } from './api.js';
import { $, closest, debounce, enc, h, messageOf, showMsg, toast } from './dom.js';
import { openEvents } from './events.js';
import { ACTION_WORDS, countsText, etaText, FINAL, isSweepAction, setBar } from './sweep-status.js';

/** @typedef {import('./api-types.js').Sweep} Sweep */

export function sweepsPage() {
  const tbody = $('#sweeps-body');
  const msg = $('#sweeps-msg');
  /** @type {Map<string, HTMLTableRowElement>} */
  const rows = new Map();
  /** The sweep each row shows. @type {WeakMap<HTMLTableRowElement, Sweep>} */
  const shown = new WeakMap();

  /** @param {Sweep} s */
  function row(s) {
    const tr = h('tr', { dataset: { id: s.id } });
    tr.append(
      h('td', {}, h('a', { href: `/ui/sweeps/${enc(s.id)}`, text: s.name }), h('span', { class: 'sub', text: `${s.id} · ${s.kind || 'render'} · ${s.backend}` })),
      h('td', { class: 'status' }, h('span', { class: 'badge' })),
      h('td', {}, h('div', { class: 'bar', role: 'progressbar', 'aria-label': `Progress of ${s.name}`, 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('span')), h('span', { class: 'sub counts' })),
      h('td', { class: 'eta' }),
      h(
        'td',
        {},
        h(
          'form',
          { class: 'inline priority' },
          h('label', { class: 'sr-only', for: `prio-${s.id}`, text: `Priority of ${s.name}` }),
          h('input', { id: `prio-${s.id}`, type: 'number', min: -100, max: 100, value: s.priority, required: true }),
          h('button', { type: 'submit', 'aria-label': `Set priority of ${s.name}` }, 'Set'),
        ),
      ),
      h(
        'td',
        {},
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'button', dataset: { action: 'pause' }, 'aria-label': `Pause ${s.name}` }, 'Pause'),
          h('button', { type: 'button', dataset: { action: 'resume' }, 'aria-label': `Resume ${s.name}` }, 'Resume'),
          h('button', { type: 'button', class: 'danger', dataset: { action: 'cancel' }, 'aria-label': `Cancel ${s.name}` }, 'Cancel'),
        ),
      ),
    );
    update(tr, s);
    return tr;
  }

  /**
   * Updates a row in place (never rebuilt, so a click or focus on it is never lost).
   * @param {HTMLTableRowElement} tr
   * @param {Sweep} s
   */
  function update(tr, s) {
    shown.set(tr, s);
    const badge = $('.status .badge', HTMLElement, tr);
    badge.className = `badge ${s.status}`;
    badge.textContent = s.status;
    setBar($('.bar', HTMLElement, tr), s);
    $('.counts', HTMLElement, tr).textContent = countsText(s);
    $('.eta', HTMLElement, tr).textContent = etaText(s);
    const prio = $('input[type=number]', HTMLInputElement, tr);
    if (document.activeElement !== prio) prio.value = String(s.priority);
    const final = FINAL.has(s.status);
    $('[data-action=pause]', HTMLButtonElement, tr).disabled = final || s.status === 'paused';
    $('[data-action=resume]', HTMLButtonElement, tr).disabled = s.status !== 'paused';
    $('[data-action=cancel]', HTMLButtonElement, tr).disabled = final;
  }

  // Many sweep events a second while farms run: rows repaint at most once per frame.
  /** @type {Map<HTMLTableRowElement, Sweep>} */
  const pending = new Map();
  let frame = 0;
  /** @param {HTMLTableRowElement} tr @param {Sweep} s */
  function later(tr, s) {
    pending.set(tr, s);
    if (!frame) {
      frame = requestAnimationFrame(() => {
        frame = 0;
        for (const [t, v] of pending) update(t, v);
        pending.clear();
      });
    }
  }

  const load = debounce(async () => {
    try {
      const { sweeps } = await listSweeps();
      rows.clear();
      if (!sweeps.length) {
        tbody.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No sweeps yet. ', h('a', { href: '/ui/submit', text: 'Submit one.' }))));
        return;
      }
      tbody.replaceChildren(
        ...sweeps.map((s) => {
          const tr = row(s);
          rows.set(s.id, tr);
          return tr;
        }),
      );
      showMsg(msg, '');
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  }, 50);

  tbody.addEventListener('click', async (ev) => {
    const btn = closest(ev, 'button[data-action]');
    const tr = btn?.closest('tr');
    const s = tr && shown.get(tr);
    const action = btn?.dataset.action;
    if (!tr || !s || !isSweepAction(action)) return;
    if (action === 'cancel' && !confirm(`Cancel sweep “${s.name}”? Queued jobs will not run.`)) return;
    try {
      update(tr, await sweepAction(s.id, action));
      toast(`Sweep ${s.name} ${ACTION_WORDS[action]}.`);
    } catch (err) {
      toast(messageOf(err), { error: true });
    }
  });
  tbody.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = closest(ev, 'form');
    const tr = form?.closest('tr');
    const s = tr && shown.get(tr);
    if (!form || !tr || !s) return;
    const value = Number($('input', HTMLInputElement, form).value);
    try {
      update(tr, await setPriority(s.id, value));
      toast(`Priority of ${s.name} set to ${value}.`);
    } catch (err) {
      toast(messageOf(err), { error: true });
    }
  });

  openEvents('', {
    open: load,
    sweep: (e) => {
      const tr = rows.get(e.sweepId);
      if (tr && e.sweep) later(tr, e.sweep);
      else load();
    },
  });
  // ETAs and "ago" texts age even without events.
  setInterval(() => {
    for (const tr of rows.values()) {
      const s = shown.get(tr);
      if (s) $('.eta', HTMLElement, tr).textContent = etaText(s);
    }
  }, 5_000);
}

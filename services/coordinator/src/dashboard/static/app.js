// Nightshift dashboard client. One plain ES module, no framework, no build step.
// Pages are server-rendered HTML (pages.ts); this fills in data from the JSON
// API and keeps it live over Server-Sent Events.

const TOKEN_KEY = 'nightshift.apiToken';
const PAGE_SIZE = 120;
const FINAL = new Set(['done', 'failed', 'cancelled']);

// ------------------------------------------------------------------ helpers

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const enc = encodeURIComponent;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Tiny DOM builder; text always goes in as text, never as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c);
  return el;
}

function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

function fmtDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  const hrs = Math.floor(s / 3600);
  return `${hrs} h ${Math.round((s % 3600) / 60)} min`;
}

function fmtAgo(iso) {
  if (!iso) return '—';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 2) return 'just now';
  return `${fmtDuration(s)} ago`;
}

function toast(message, { error = false, link } = {}) {
  const box = $('#toasts');
  const el = h('div', { class: `toast${error ? ' error' : ''}` }, message, link ? [' ', h('a', { href: link.href, text: link.text })] : []);
  box.append(el);
  setTimeout(() => el.remove(), error ? 10_000 : 6_000);
}

function showMsg(el, text, error = false) {
  el.textContent = text;
  el.classList.toggle('error', error);
}

window.nightshiftStats = { events: {}, previews: 0 };

// ------------------------------------------------------------------ auth and API

const getToken = () => {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
};
const authHeaders = () => (getToken() ? { authorization: `Bearer ${getToken()}` } : {});

let tokenPrompt = null;
/** Asks for the API token once (concurrent callers share the dialog). Resolves to the token or null. */
function askToken(rejected) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dlg = $('#auth-dialog');
    const form = $('#auth-form');
    const input = $('#auth-token');
    const err = $('#auth-error');
    err.textContent = rejected ? 'That token was refused. Check NIGHTSHIFT_API_TOKEN on the coordinator.' : '';
    input.setAttribute('aria-invalid', rejected ? 'true' : 'false');
    input.value = '';
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('close', onClose);
      tokenPrompt = null;
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) {
        err.textContent = 'Enter the token.';
        return;
      }
      localStorage.setItem(TOKEN_KEY, v);
      updateForgetButton();
      done(v);
      dlg.close();
    };
    const onClose = () => done(null);
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    input.focus();
  });
  return tokenPrompt;
}

function updateForgetButton() {
  const b = $('#forget-token');
  if (b) b.hidden = !getToken();
}

class ApiError extends Error {
  constructor(message, status, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

function errorMessage(status, data, method, path) {
  if (data && typeof data.error === 'string') return data.error;
  if (status === 404) return `${method} ${path.split('?')[0]} is not available on this coordinator (404); it may be older than this dashboard.`;
  return `${method} ${path.split('?')[0]} failed with HTTP ${status}`;
}

/** JSON API call with the bearer token; asks for the token on 401 and retries. */
async function api(path, { method = 'GET', body, text } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...authHeaders() };
    let payload;
    if (text !== undefined) {
      headers['content-type'] = 'text/yaml';
      payload = text;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, { method, headers, body: payload });
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
    const data = type.includes('json') ? await res.json().catch(() => null) : (await res.text(), null);
    if (!res.ok) throw new ApiError(errorMessage(res.status, data, method, path), res.status, data);
    return data;
  }
}

// Images: <img> cannot send headers, so behind a token the coordinator issues
// a short-lived HttpOnly cookie valid only for /ui/files (see session.ts).
let imageAuth = false;
let sessionTimer;
async function ensureFileSession() {
  for (let attempt = 0; attempt < 3; attempt++) {
    const res = await fetch('/ui/session', { method: 'POST', headers: authHeaders() }).catch(() => null);
    if (!res) return;
    if (res.status === 401) {
      if (!(await askToken(Boolean(getToken())))) return;
      continue;
    }
    const data = await res.json().catch(() => ({}));
    imageAuth = Boolean(data.auth);
    clearTimeout(sessionTimer);
    if (imageAuth) sessionTimer = setTimeout(ensureFileSession, 25 * 60_000);
    return;
  }
}

/** Maps an API file URL (/files/… or absolute) to the dashboard's image route. */
function fileSrc(url) {
  if (!url) return '';
  const u = new URL(url, location.origin);
  const m = /^\/files\/(.+)$/.exec(u.pathname);
  return m ? `/ui/files/${m[1]}` : url;
}

// An image that fails behind a token may only need a fresh cookie: retry once.
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

// ------------------------------------------------------------------ live events

/**
 * Server-Sent Events read with fetch (EventSource cannot send the
 * Authorization header). Reconnects with backoff; `open` runs on every
 * (re)connect so pages can resynchronise what they missed.
 */
function openEvents(query, handlers) {
  let stopped = false;
  let ctrl;
  let backoff = 1000;
  const live = $('#live');
  const setLive = (on, text) => {
    live.className = `live ${on ? 'on' : 'off'}`;
    live.textContent = text;
  };
  const dispatch = (event, raw) => {
    let payload;
    try {
      payload = JSON.parse(raw);
    } catch {
      return;
    }
    const stats = window.nightshiftStats;
    stats.events[event] = (stats.events[event] || 0) + 1;
    if (event === 'progress' && payload.preview) stats.previews++;
    try {
      handlers[event]?.(payload);
    } catch (err) {
      console.error(err);
    }
  };
  (async () => {
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

// ------------------------------------------------------------------ sweeps (shared)

const finishedOf = (c) => (c.done || 0) + (c.skipped || 0) + (c.failed || 0) + (c.cancelled || 0);

function countsText(s) {
  const c = s.counts || {};
  const parts = [`${finishedOf(c).toLocaleString()} / ${s.total.toLocaleString()}`];
  if (c.done) parts.push(`${c.done.toLocaleString()} done`);
  if (c.running) parts.push(`${c.running} rendering`);
  if (c.queued) parts.push(`${c.queued.toLocaleString()} queued`);
  if (c.failed) parts.push(`${c.failed} failed`);
  if (c.skipped) parts.push(`${c.skipped} already rendered`);
  if (c.cancelled) parts.push(`${c.cancelled} cancelled`);
  return parts.join(' · ');
}

function etaText(s) {
  if (s.status === 'done') return 'finished';
  if (FINAL.has(s.status)) return '—';
  if (s.status === 'paused') return 'paused';
  if (typeof s.etaSeconds === 'number') return `${fmtDuration(s.etaSeconds)}${s.rate ? ` (${s.rate.toFixed(1)} img/s)` : ''}`;
  return s.status === 'queued' ? 'waiting for a node' : 'estimating…';
}

function setBar(bar, s) {
  const pct = s.total ? (100 * finishedOf(s.counts || {})) / s.total : 0;
  bar.querySelector('span').style.width = `${pct.toFixed(1)}%`;
  bar.setAttribute('aria-valuenow', pct.toFixed(0));
  bar.setAttribute('aria-valuetext', `${pct.toFixed(0)}% — ${countsText(s)}`);
}

async function sweepAction(id, action, body) {
  const data = await api(`/api/sweeps/${enc(id)}/${action}`, { method: 'POST', ...(body ? { body } : {}) });
  return data;
}

const ACTION_WORDS = { pause: 'paused', resume: 'resumed', cancel: 'cancelled', priority: 'reprioritised' };

// ------------------------------------------------------------------ page: sweeps list

function sweepsPage() {
  const tbody = $('#sweeps-body');
  const msg = $('#sweeps-msg');
  const rows = new Map();

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

  /** Updates a row in place (never rebuilt, so a click or focus on it is never lost). */
  function update(tr, s) {
    tr._sweep = s;
    const badge = tr.querySelector('.status .badge');
    badge.className = `badge ${s.status}`;
    badge.textContent = s.status;
    setBar(tr.querySelector('.bar'), s);
    tr.querySelector('.counts').textContent = countsText(s);
    tr.querySelector('.eta').textContent = etaText(s);
    const prio = tr.querySelector('input[type=number]');
    if (document.activeElement !== prio) prio.value = s.priority;
    const final = FINAL.has(s.status);
    tr.querySelector('[data-action=pause]').disabled = final || s.status === 'paused';
    tr.querySelector('[data-action=resume]').disabled = s.status !== 'paused';
    tr.querySelector('[data-action=cancel]').disabled = final;
  }

  // Many sweep events a second while farms run: rows repaint at most once per frame.
  const pending = new Map();
  let frame = 0;
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
      const { sweeps } = await api('/api/sweeps');
      rows.clear();
      if (!sweeps.length) {
        tbody.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'muted' }, 'No sweeps yet. ', h('a', { href: '/ui/submit', text: 'Submit one.' }))));
        return;
      }
      tbody.replaceChildren(...sweeps.map((s) => {
        const tr = row(s);
        rows.set(s.id, tr);
        return tr;
      }));
      showMsg(msg, '');
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  }, 50);

  tbody.addEventListener('click', async (ev) => {
    const btn = ev.target.closest('button[data-action]');
    if (!btn) return;
    const tr = btn.closest('tr');
    const s = tr._sweep;
    const action = btn.dataset.action;
    if (action === 'cancel' && !confirm(`Cancel sweep “${s.name}”? Queued jobs will not run.`)) return;
    try {
      update(tr, await sweepAction(s.id, action));
      toast(`Sweep ${s.name} ${ACTION_WORDS[action]}.`);
    } catch (err) {
      toast(err.message, { error: true });
    }
  });
  tbody.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tr = ev.target.closest('tr');
    const value = Number(ev.target.querySelector('input').value);
    try {
      update(tr, await sweepAction(tr._sweep.id, 'priority', { priority: value }));
      toast(`Priority of ${tr._sweep.name} set to ${value}.`);
    } catch (err) {
      toast(err.message, { error: true });
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
    for (const tr of rows.values()) tr.querySelector('.eta').textContent = etaText(tr._sweep);
  }, 5_000);
}

// ------------------------------------------------------------------ page: submit

function submitPage() {
  const form = $('#sweep-form');
  const rowsBox = $('#axes-rows');
  const count = $('#preview-count');
  const samples = $('#preview-samples');
  let touched = false;

  function addAxis(name = '', values = []) {
    const frag = $('#axis-row').content.cloneNode(true);
    const row = frag.querySelector('.axis-row');
    const n = rowsBox.children.length + 1;
    const nameInput = row.querySelector('.axis-name');
    const valuesInput = row.querySelector('.axis-values');
    nameInput.id = `axis-name-${n}`;
    valuesInput.id = `axis-values-${n}`;
    const [l1, l2] = row.querySelectorAll('label');
    l1.htmlFor = nameInput.id;
    l2.htmlFor = valuesInput.id;
    row.querySelector('.field-error').id = `axis-error-${n}`;
    nameInput.setAttribute('aria-describedby', `axis-error-${n}`);
    valuesInput.setAttribute('aria-describedby', `axis-error-${n}`);
    row.querySelector('.remove-axis').setAttribute('aria-label', `Remove axis ${n}`);
    nameInput.value = name;
    valuesInput.value = values.map((v) => (v === '' ? '(none)' : String(v))).join('\n');
    rowsBox.append(row);
    return row;
  }
  $('#add-axis').addEventListener('click', () => {
    addAxis().querySelector('.axis-name').focus();
  });
  rowsBox.addEventListener('click', (ev) => {
    const b = ev.target.closest('.remove-axis');
    if (!b) return;
    b.closest('.axis-row').remove();
    refresh();
  });

  const val = (sel) => $(sel).value.trim();
  const num = (sel) => (val(sel) === '' ? undefined : Number(val(sel)));
  const scalar = (v) => (/^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v);

  function buildSpec() {
    const spec = {};
    if (val('#f-name')) spec.name = val('#f-name');
    spec.prompts = $('#f-prompts').value.split('\n').map((s) => s.trim()).filter(Boolean);
    const axes = {};
    for (const row of $$('.axis-row', rowsBox)) {
      const name = row.querySelector('.axis-name').value.trim();
      const values = row.querySelector('.axis-values').value.split('\n').map((s) => s.trim()).filter(Boolean).map((s) => (s === '(none)' ? '' : name.startsWith('params.') ? scalar(s) : s));
      if (!name && !values.length) continue;
      axes[name] = values;
    }
    if (Object.keys(axes).length) spec.axes = axes;
    const zip = val('#f-zip').split(',').map((s) => s.trim()).filter(Boolean);
    if (zip.length) spec.zip = zip;
    if (val('#f-template')) spec.template = val('#f-template');
    const list = val('#f-seed-list');
    spec.seeds = list ? list.split(/[\s,]+/).filter(Boolean).map(Number) : { start: num('#f-seed-start') ?? 0, count: num('#f-seed-count') };
    const params = {};
    for (const [k, sel] of [['width', '#f-width'], ['height', '#f-height'], ['steps', '#f-steps'], ['guidance', '#f-guidance']]) if (num(sel) !== undefined) params[k] = num(sel);
    for (const line of $('#f-extra').value.split('\n')) {
      const m = /^\s*([^=\s]+)\s*=\s*(.*?)\s*$/.exec(line);
      if (m) params[m[1]] = scalar(m[2]);
    }
    spec.params = params;
    spec.backend = $('#f-backend').value;
    if (val('#f-model')) spec.model = val('#f-model');
    if (num('#f-priority') !== undefined) spec.priority = num('#f-priority');
    return spec;
  }

  function fillForm(spec) {
    const set = (sel, v) => ($(sel).value = v === undefined || v === null ? '' : String(v));
    set('#f-name', spec.name);
    set('#f-prompts', (spec.prompts || []).join('\n'));
    rowsBox.replaceChildren();
    for (const [name, values] of Object.entries(spec.axes || {})) addAxis(name, values);
    set('#f-zip', (spec.zip || []).join(', '));
    set('#f-template', spec.template);
    if (Array.isArray(spec.seeds)) {
      set('#f-seed-list', spec.seeds.join(', '));
    } else {
      set('#f-seed-list', '');
      set('#f-seed-start', spec.seeds?.start ?? 0);
      set('#f-seed-count', spec.seeds?.count);
    }
    const { width, height, steps, guidance, ...extra } = spec.params || {};
    set('#f-width', width ?? 256);
    set('#f-height', height ?? 256);
    set('#f-steps', steps ?? 50);
    set('#f-guidance', guidance ?? 7.5);
    set('#f-extra', Object.entries(extra).map(([k, v]) => `${k}=${v}`).join('\n'));
    set('#f-backend', spec.backend || 'procedural');
    set('#f-model', spec.model);
    set('#f-priority', spec.priority ?? 0);
  }

  function clearErrors() {
    for (const el of $$('.field-error, #form-error')) el.textContent = '';
    for (const el of $$('[aria-invalid="true"]', form)) el.removeAttribute('aria-invalid');
  }

  const FIELD = {
    name: '#f-name', prompts: '#f-prompts', zip: '#f-zip', template: '#f-template', 'seeds.start': '#f-seed-start', 'seeds.count': '#f-seed-count',
    'params.width': '#f-width', 'params.height': '#f-height', 'params.steps': '#f-steps', 'params.guidance': '#f-guidance', backend: '#f-backend', model: '#f-model', priority: '#f-priority',
  };

  /** Puts each {path, message} from the API next to its field. Returns the first invalid control. */
  function showErrors(details) {
    let first = null;
    const put = (input, errEl, text) => {
      errEl.textContent = errEl.textContent ? `${errEl.textContent} ${text}` : text;
      if (input) {
        input.setAttribute('aria-invalid', 'true');
        first ??= input;
      }
    };
    for (const { path, message } of details) {
      const parts = path ? path.split('.') : [];
      const two = parts.slice(0, 2).join('.');
      let sel = FIELD[two] || FIELD[parts[0]];
      if (parts[0] === 'prompts' && parts[1] !== undefined) {
        put($('#f-prompts'), $('#f-prompts-error'), `Prompt ${Number(parts[1]) + 1}: ${message}.`);
        continue;
      }
      if (parts[0] === 'axes') {
        const row = $$('.axis-row', rowsBox).find((r) => r.querySelector('.axis-name').value.trim() === parts[1]);
        if (row) put(row.querySelector('.axis-values'), row.querySelector('.field-error'), `${parts.length > 2 ? `Value ${Number(parts[2]) + 1}: ` : ''}${message}.`);
        else put(null, $('#axes-error'), `${parts[1] ? `Axis “${parts[1]}”: ` : ''}${message}.`);
        continue;
      }
      if (parts[0] === 'seeds' && !sel) {
        if (val('#f-seed-list')) put($('#f-seed-list'), $('#f-seed-list-error'), `${parts[1] !== undefined ? `Seed ${Number(parts[1]) + 1}: ` : ''}${message}.`);
        else put($('#f-seed-count'), $('#seeds-error'), `${message}.`);
        continue;
      }
      if (parts[0] === 'params' && !sel) {
        put($('#f-extra'), $('#f-extra-error'), `${parts[1] ? `${parts[1]}: ` : ''}${message}.`);
        continue;
      }
      if (sel) put($(sel), $(`${sel}-error`), `${message}.`);
      else put(null, $('#form-error'), `${path ? `${path}: ` : ''}${message}.`);
    }
    return first;
  }

  function showPreview(p, countEl = count, list = samples) {
    countEl.textContent = `${p.jobs.toLocaleString()} job${p.jobs === 1 ? '' : 's'}`;
    countEl.append(h('span', { class: 'hint', text: ` — ${p.prompts.toLocaleString()} prompt${p.prompts === 1 ? '' : 's'} × ${p.seeds.toLocaleString()} seed${p.seeds === 1 ? '' : 's'}` }));
    list.replaceChildren(...p.samples.map((s) => h('li', { text: s.prompt || '(empty prompt)' })));
  }

  let seq = 0;
  const refresh = debounce(async () => {
    const spec = buildSpec();
    const mine = ++seq;
    if (!spec.prompts.length) {
      clearErrors();
      count.textContent = 'Fill in a prompt to see the sweep.';
      samples.replaceChildren();
      return;
    }
    try {
      const p = await api('/api/sweeps/preview', { method: 'POST', body: spec });
      if (mine !== seq) return;
      clearErrors();
      showPreview(p);
    } catch (err) {
      if (mine !== seq) return;
      clearErrors();
      count.textContent = err.data?.details ? 'Fix the marked fields to see the sweep.' : err.message;
      samples.replaceChildren();
      if (err.data?.details && touched) showErrors(err.data.details);
    }
  }, 250);
  form.addEventListener('input', () => {
    touched = true;
    refresh();
  });

  async function submitSpec(spec, onErrors) {
    const btns = $$('button[type=submit]');
    btns.forEach((b) => (b.disabled = true));
    try {
      const res = await api('/api/sweeps', { method: 'POST', body: spec });
      location.href = `/ui/sweeps/${enc(res.id)}`;
    } catch (err) {
      onErrors(err);
    } finally {
      btns.forEach((b) => (b.disabled = false));
    }
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    touched = true;
    clearErrors();
    void submitSpec(buildSpec(), (err) => {
      if (err.data?.details?.length) {
        $('#form-error').textContent = 'The sweep was not submitted: fix the marked fields.';
        (showErrors(err.data.details) || $('#form-error')).focus();
      } else {
        $('#form-error').textContent = err.message;
      }
    });
  });

  // Pasted YAML/JSON.
  const pasteBox = $('#paste-result');
  async function checkPasted() {
    const text = $('#spec-text').value;
    pasteBox.replaceChildren();
    if (!text.trim()) {
      pasteBox.append(h('p', { class: 'field-error', text: 'Paste a spec first.' }));
      return null;
    }
    try {
      const p = await api('/api/sweeps/preview', { method: 'POST', text });
      const c = h('p', { class: 'big' });
      const list = h('ol', { class: 'samples' });
      showPreview(p, c, list);
      pasteBox.append(c, list);
      return p;
    } catch (err) {
      pasteBox.append(
        h('p', { class: 'field-error', text: err.message.split(':')[0] }),
        h('ul', { class: 'field-error' }, (err.data?.details || []).map((d) => h('li', {}, d.path ? h('code', { text: d.path }) : '', d.path ? ': ' : '', d.message))),
      );
      return null;
    }
  }
  $('#paste-check').addEventListener('click', checkPasted);
  $('#paste-load').addEventListener('click', async () => {
    const p = await checkPasted();
    if (!p) return;
    fillForm(p.input);
    refresh();
    $('#f-prompts').focus();
  });
  $('#paste-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const p = await checkPasted();
    if (p) void submitSpec(p.input, (err) => pasteBox.append(h('p', { class: 'field-error', text: err.message })));
  });

  // "Render more seeds" elsewhere can hand a spec over to edit.
  const handed = sessionStorage.getItem('nightshift.draft');
  if (handed) {
    sessionStorage.removeItem('nightshift.draft');
    try {
      fillForm(JSON.parse(handed));
      refresh();
    } catch {
      /* ignore a broken draft */
    }
  }
  $('#live').textContent = '';
}

// ------------------------------------------------------------------ page: one sweep (contact sheet, X/Y)

const tileState = (s) => (s === 'leased' ? 'running' : s === 'skipped' ? 'done' : s);
const STATE_TEXT = { queued: 'queued', running: 'rendering', done: 'done', failed: 'failed', cancelled: 'cancelled' };

function sweepPage() {
  const id = document.body.dataset.sweepId;
  const sheet = $('#sheet');
  const msg = $('#sweep-msg');
  let sweep = null;
  let jobs = [];
  let byId = new Map();
  let els = new Map();
  let view = 'sheet';
  let loading = null;
  let buffered = [];

  function thumbOf(j) {
    return fileSrc(j.thumbUrl || `/files/thumbs/${j.renderKey}.webp`);
  }

  function label(j) {
    const st = tileState(j.state);
    const extra = st === 'running' && j.total ? ` ${Math.round((100 * j.step) / j.total)}%` : '';
    return `${j.prompt}, seed ${j.seed}: ${STATE_TEXT[st] || st}${extra}${st === 'failed' && j.error ? ` — ${j.error}` : ''}`;
  }

  function tile(j) {
    const li = h('li', { class: 'tile', dataset: { job: j.id } });
    li.append(h('button', { type: 'button' }));
    paint(j, li);
    return li;
  }

  // Live events can come hundreds a second; tiles are repainted once per frame.
  const dirty = new Set();
  let frame = 0;
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

  /** Brings one tile up to date with its job. */
  function paint(j, li = els.get(j.id)) {
    if (!li) return;
    const st = tileState(j.state);
    const btn = li.firstChild;
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
    if (step) step.style.width = st === 'running' && j.total ? `${(100 * j.step) / j.total}%` : '0';
  }

  // ---------------------------------------------------------------- X/Y dimensions
  function dims() {
    const names = [];
    for (const j of jobs) for (const k of Object.keys(j.axes || {})) if (!names.includes(k)) names.push(k);
    const out = names.map((n) => ({ key: `axis:${n}`, label: n }));
    if ((sweep?.spec?.prompts?.length ?? 0) > 1) out.push({ key: 'prompt', label: 'prompt' });
    out.push({ key: 'seed', label: 'seed' });
    return out;
  }
  function valueOf(j, key) {
    if (key === 'seed') return j.seed;
    if (key === 'prompt') {
      const prompts = sweep.spec.prompts;
      return prompts[Math.floor(j.index / Math.max(1, jobs.length / prompts.length))] ?? '';
    }
    const v = j.axes?.[key.slice(5)];
    return v === undefined ? '' : v;
  }
  function fillDimSelects() {
    const ds = dims();
    for (const [sel, fallback] of [['#xy-rows', 0], ['#xy-cols', 1]]) {
      const s = $(sel);
      const cur = s.value;
      s.replaceChildren(...ds.map((d) => h('option', { value: d.key, text: d.label })));
      s.value = ds.some((d) => d.key === cur) ? cur : ds[Math.min(fallback, ds.length - 1)].key;
    }
  }

  function renderView() {
    els = new Map();
    if (!jobs.length) {
      sheet.replaceChildren(h('p', { class: 'muted', text: 'This sweep has no jobs.' }));
      return;
    }
    if (view === 'sheet') {
      const ul = h('ul', { class: 'tiles', 'aria-label': `${jobs.length} jobs` });
      for (const j of jobs) {
        const li = tile(j);
        els.set(j.id, li);
        ul.append(li);
      }
      sheet.replaceChildren(ul);
      performance.mark('nightshift:sheet-rendered');
      return;
    }
    const rk = $('#xy-rows').value;
    const ck = $('#xy-cols').value;
    const uniq = (key) => [...new Set(jobs.map((j) => valueOf(j, key)))];
    const rowVals = uniq(rk);
    const colVals = uniq(ck);
    const cells = new Map();
    for (const j of jobs) {
      const k = `${rowVals.indexOf(valueOf(j, rk))}|${colVals.indexOf(valueOf(j, ck))}`;
      if (!cells.has(k)) cells.set(k, []);
      cells.get(k).push(j);
    }
    const name = (key) => (key.startsWith('axis:') ? key.slice(5) : key);
    const show = (v) => (v === '' ? '(none)' : String(v));
    const table = h(
      'table',
      {},
      h('caption', { class: 'sr-only', text: `Rows: ${name(rk)}; columns: ${name(ck)}` }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: `${name(rk)} \\ ${name(ck)}` }), colVals.map((v) => h('th', { scope: 'col', text: show(v) })))),
      h(
        'tbody',
        {},
        rowVals.map((rv, ri) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row', text: show(rv) }),
            colVals.map((_, ci) => {
              const ul = h('ul', { class: 'tiles' });
              for (const j of cells.get(`${ri}|${ci}`) || []) {
                const li = tile(j);
                els.set(j.id, li);
                ul.append(li);
              }
              return h('td', {}, ul);
            }),
          ),
        ),
      ),
    );
    sheet.replaceChildren(h('div', { class: 'xy' }, table));
  }

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
    const explain = Array.isArray(sweep.explain) ? sweep.explain : sweep.explain ? [String(sweep.explain)] : [];
    $('#sweep-explain').hidden = !explain.length || FINAL.has(sweep.status);
    $('#sweep-explain').textContent = explain.join(' ');
    const final = FINAL.has(sweep.status);
    $('#sweep-actions [data-action=pause]').disabled = final || sweep.status === 'paused';
    $('#sweep-actions [data-action=resume]').disabled = sweep.status !== 'paused';
    $('#sweep-actions [data-action=cancel]').disabled = final;
    const prio = $('#priority-input');
    if (document.activeElement !== prio) prio.value = sweep.priority;
    const failed = sweep.failedJobs || [];
    $('#failed-section').hidden = !failed.length;
    $('#failed-list').replaceChildren(
      ...failed.map((f) => h('li', {}, h('strong', { text: `${f.prompt} (seed ${f.seed})` }), `: ${f.error || 'failed'}`, f.logTail ? h('pre', { text: f.logTail }) : '')),
    );
  }

  // Events that arrive while a snapshot loads are replayed on top of it.
  function applyJob(e) {
    const j = byId.get(e.jobId);
    if (!j) return void reload();
    j.state = e.state;
    if (e.state === 'queued') {
      j.preview = null;
      j.step = 0;
    }
    schedule(j);
    if (e.state === 'failed') {
      refreshSweep();
      refreshErrors();
    }
  }
  function applyProgress(e) {
    const j = byId.get(e.jobId);
    if (!j || FINAL.has(j.state) || j.state === 'skipped') return;
    j.state = 'leased';
    j.step = e.step;
    j.total = e.total;
    if (e.preview) j.preview = `data:image/webp;base64,${e.preview}`;
    schedule(j);
  }
  const live = (fn) => (e) => (loading ? buffered.push(() => fn(e)) : fn(e));

  // Job events carry no error text; failed tiles get theirs from the job list.
  const refreshErrors = debounce(async () => {
    try {
      const data = await api(`/api/sweeps/${enc(id)}/jobs`);
      for (const f of data.jobs) {
        const j = byId.get(f.id);
        if (j && f.state === 'failed' && j.error !== f.error) {
          j.error = f.error;
          schedule(j);
        }
      }
    } catch {
      /* the next event retries */
    }
  }, 500);

  const refreshSweep = debounce(async () => {
    try {
      const explainAndFailed = await api(`/api/sweeps/${enc(id)}`);
      sweep = { ...sweep, ...explainAndFailed };
      renderSummary();
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  }, 300);

  async function reload() {
    if (loading) return loading;
    buffered = [];
    loading = (async () => {
      try {
        const [s, data] = await Promise.all([api(`/api/sweeps/${enc(id)}`), api(`/api/sweeps/${enc(id)}/jobs`)]);
        sweep = s;
        jobs = data.jobs.map((j) => ({ ...j, preview: null, step: 0, total: 0 }));
        byId = new Map(jobs.map((j) => [j.id, j]));
        fillDimSelects();
        renderSummary();
        renderView();
        showMsg(msg, '');
      } catch (err) {
        showMsg(msg, err.status === 404 ? `No sweep ${id} on this coordinator.` : err.message, true);
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
    const btn = ev.target.closest('button[data-action]');
    if (!btn || !sweep) return;
    const action = btn.dataset.action;
    if (action === 'cancel' && !confirm(`Cancel sweep “${sweep.name}”? Queued jobs will not run.`)) return;
    try {
      Object.assign(sweep, await sweepAction(id, action));
      renderSummary();
      showMsg(msg, `Sweep ${ACTION_WORDS[action]}.`);
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  });
  $('#priority-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = Number($('#priority-input').value);
    try {
      Object.assign(sweep, await sweepAction(id, 'priority', { priority: value }));
      renderSummary();
      showMsg(msg, `Priority set to ${value}.`);
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  });
  $('#upscale-favs').addEventListener('click', async () => {
    try {
      const res = await api('/api/upscale', { method: 'POST', body: { sweep: id, favorites: true } });
      showMsg(msg, `Upscaling ${res.jobs} favorite(s) as sweep ${res.id}.`);
      toast(`Upscale batch started (${res.jobs} images).`, { link: { href: `/ui/sweeps/${enc(res.id)}`, text: 'Open it' } });
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  });

  // View switching.
  for (const r of $$('input[name=view]')) {
    r.addEventListener('change', () => {
      view = r.value;
      $('#xy-controls').hidden = view !== 'xy';
      renderView();
    });
  }
  $('#xy-rows').addEventListener('change', renderView);
  $('#xy-cols').addEventListener('change', renderView);

  sheet.addEventListener('click', (ev) => {
    const li = ev.target.closest('.tile');
    if (!li) return;
    const j = byId.get(li.dataset.job);
    if (j && tileState(j.state) === 'done') openImage(j.renderKey, { prompt: j.prompt, seed: j.seed, thumbUrl: thumbOf(j) });
  });

  openEvents(`?sweep=${enc(id)}`, {
    open: reload,
    sweep: live((e) => {
      if (!e.sweep || !sweep) return;
      sweep = { ...sweep, ...e.sweep };
      renderSummary();
    }),
    job: live(applyJob),
    progress: live(applyProgress),
  });
  setInterval(() => sweep && renderSummary(), 5_000);
}

// ------------------------------------------------------------------ page: gallery

function galleryPage() {
  const params = new URLSearchParams(location.search);
  const q = (params.get('q') || '').trim();
  const sweepFilter = params.get('sweep') || '';
  const favOnly = params.get('favorites') === 'true';
  const like = params.get('like') || '';
  const page = Math.max(1, Number.parseInt(params.get('page') || '1', 10) || 1);
  const grid = $('#gallery-grid');
  const status = $('#gallery-status');
  const items = new Map();
  $('#g-q').value = q;
  $('#g-fav').checked = favOnly;
  $('#g-like').value = like;
  if (!like) $('#g-like').disabled = true; // keep ?like= out of the URL unless set
  $('#live').textContent = '';

  // Sweep filter options load in the background; the grid does not wait for them.
  void api('/api/sweeps').then(({ sweeps }) => {
    const sel = $('#g-sweep');
    if (sweeps.some((s) => s.id === sweepFilter)) sel.querySelector(`option[value="${CSS.escape(sweepFilter)}"]`)?.remove();
    sel.append(...sweeps.filter((s) => s.kind !== 'upscale').map((s) => h('option', { value: s.id, text: `${s.name} (${s.id})` })));
    sel.value = sweepFilter;
  }, () => {});
  if (sweepFilter) $('#g-sweep').append(h('option', { value: sweepFilter, text: sweepFilter, selected: true }));

  const urlWith = (changes) => {
    const u = new URLSearchParams(location.search);
    for (const [k, v] of Object.entries(changes)) (v === null || v === '' ? u.delete(k) : u.set(k, v));
    const s = u.toString();
    return `/ui/gallery${s ? `?${s}` : ''}`;
  };

  function card(it) {
    items.set(it.renderKey, it);
    const fav = it.favorite === true;
    return h(
      'li',
      { class: 'card', dataset: { key: it.renderKey } },
      h('button', { type: 'button', class: 'thumb', title: it.prompt }, h('img', { src: fileSrc(it.thumbUrl), alt: `${it.prompt}, seed ${it.seed}`, loading: 'lazy', decoding: 'async', width: 256, height: 256 })),
      h('p', { class: 'cap', text: `${it.prompt} · seed ${it.seed}` }),
      h(
        'div',
        { class: 'bar2' },
        h('button', { type: 'button', class: 'fav', 'aria-pressed': String(fav), 'aria-label': 'Favorite', title: it.favorite === null ? 'Favorite (state unknown: the indexer did not answer)' : 'Favorite' }, fav ? '★' : '☆'),
        h('a', { class: 'like', href: urlWith({ like: it.renderKey, page: null }), text: 'More like this' }),
        typeof it.score === 'number' ? h('span', { class: 'score', title: 'similarity', text: it.score.toFixed(3) }) : '',
      ),
    );
  }

  function pager(hasMore, totalPages) {
    const nav = $('#pager');
    nav.replaceChildren(
      page > 1 ? h('a', { class: 'button', href: urlWith({ page: page - 1 === 1 ? null : page - 1 }), rel: 'prev', text: '← Previous' }) : '',
      h('span', { text: totalPages ? `Page ${page} of ${totalPages}` : `Page ${page}` }),
      hasMore ? h('a', { class: 'button', href: urlWith({ page: page + 1 }), rel: 'next', text: 'Next →' }) : '',
    );
  }

  async function load() {
    try {
      let list;
      if (q || like) {
        const k = Math.min(500, page * PAGE_SIZE);
        const sp = new URLSearchParams({ k: String(k) });
        if (q) sp.set('q', q);
        if (like) sp.set('image', like);
        if (sweepFilter) sp.set('sweep', sweepFilter);
        if (favOnly) sp.set('favorites', 'true');
        const data = await api(`/api/search?${sp}`);
        list = data.results.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
        showMsg(status, list.length ? `Best matches ${(page - 1) * PAGE_SIZE + 1}–${(page - 1) * PAGE_SIZE + list.length}${q ? ` for “${q}”` : ''}${like ? ' similar to the chosen image' : ''}.` : `No matches${q ? ` for “${q}”` : ''}.`);
        pager(data.results.length === k && k < 500, null);
      } else {
        const sp = new URLSearchParams({ offset: String((page - 1) * PAGE_SIZE), limit: String(PAGE_SIZE) });
        if (sweepFilter) sp.set('sweep', sweepFilter);
        if (favOnly) sp.set('favorites', 'true');
        const data = await api(`/api/gallery?${sp}`);
        list = data.images;
        const pages = Math.max(1, Math.ceil(data.total / PAGE_SIZE));
        showMsg(status, data.total ? `${data.total.toLocaleString()} image${data.total === 1 ? '' : 's'}${favOnly ? ' marked favorite' : ''}, newest first.${data.favorites !== 'ok' ? ` Favorites unknown: ${data.favorites}.` : ''}` : favOnly ? 'No favorites yet.' : 'No images yet.');
        pager(page < pages, pages);
      }
      grid.replaceChildren(...list.map(card));
      performance.mark('nightshift:gallery-rendered');
      document.body.dataset.ready = 'gallery';
    } catch (err) {
      showMsg(status, err.message, true);
      document.body.dataset.ready = 'gallery';
    }
  }

  if (like) {
    const banner = $('#like-banner');
    banner.hidden = false;
    banner.append(h('img', { src: fileSrc(`/files/thumbs/${like}.webp`), alt: 'the chosen image' }), h('span', { text: 'Images like this one' }), h('a', { href: urlWith({ like: null, page: null }), text: 'Clear' }));
  }

  grid.addEventListener('click', async (ev) => {
    const li = ev.target.closest('.card');
    if (!li) return;
    const it = items.get(li.dataset.key);
    if (ev.target.closest('.thumb')) {
      openImage(it.renderKey, it, (fav) => setFavButton(li.querySelector('.fav'), fav));
    } else if (ev.target.closest('.fav')) {
      const btn = li.querySelector('.fav');
      const on = btn.getAttribute('aria-pressed') !== 'true';
      setFavButton(btn, on);
      try {
        await setFavorite(it.renderKey, on);
        it.favorite = on;
      } catch (err) {
        setFavButton(btn, !on);
        toast(err.message, { error: true });
      }
    }
  });
  return load();
}

function setFavButton(btn, on) {
  if (!btn) return;
  btn.setAttribute('aria-pressed', String(on));
  btn.firstChild.textContent = btn.id === 'img-fav' ? `${on ? '★' : '☆'} Favorite` : on ? '★' : '☆';
}

async function setFavorite(renderKey, on) {
  await api(`/api/favorites/${enc(renderKey)}`, { method: on ? 'PUT' : 'DELETE' });
}

// ------------------------------------------------------------------ image detail dialog

let detail = null;
let onDetailFavorite = null;

function openImage(renderKey, hint = {}, onFav = null) {
  const dlg = $('#image-dialog');
  onDetailFavorite = onFav;
  detail = { renderKey, ...hint };
  $('#img-title').textContent = hint.prompt || 'Image';
  const img = $('#img-full');
  img.src = fileSrc(hint.thumbUrl || `/files/thumbs/${renderKey}.webp`);
  img.alt = hint.prompt ? `${hint.prompt}, seed ${hint.seed}` : '';
  $('#img-meta').replaceChildren();
  $('#img-msg').textContent = '';
  setFavButton($('#img-fav'), hint.favorite === true);
  $('#img-like').href = `/ui/gallery?like=${enc(renderKey)}`;
  if (!dlg.open) dlg.showModal();
  void api(`/api/gallery/${enc(renderKey)}`).then(
    (d) => {
      if (detail?.renderKey !== renderKey) return;
      detail = { ...detail, ...d, favorite: d.favorite ?? hint.favorite ?? null };
      $('#img-title').textContent = d.prompt;
      img.src = fileSrc(d.url);
      $('#img-full-link').href = fileSrc(d.url);
      $('#img-sweep').href = `/ui/sweeps/${enc(d.sweepId)}`;
      setFavButton($('#img-fav'), detail.favorite === true);
      const { width, height, steps, guidance, ...rest } = d.params || {};
      const rows = [
        ['Prompt', d.prompt],
        ['Seed', String(d.seed)],
        ['Size', `${width}×${height}`],
        ['Steps', String(steps)],
        ['Guidance', String(guidance)],
        ...Object.entries(rest).map(([k, v]) => [k, String(v)]),
        ['Backend', `${d.backend} · ${d.model}`],
        ['Rendered by', d.node || '—'],
        ['Render time', d.renderMs === null || d.renderMs === undefined ? '—' : `${(d.renderMs / 1000).toFixed(2)} s`],
        ['Finished', d.finishedAt ? `${new Date(d.finishedAt).toLocaleString()} (${fmtAgo(d.finishedAt)})` : '—'],
        ['Sweep', `${d.sweepName} (${d.sweepId})`],
        ['Key', d.key],
      ];
      $('#img-meta').replaceChildren(...rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
      $('#img-more-count').value = '4';
    },
    (err) => {
      $('#img-msg').textContent = err.message;
    },
  );
}

function setupImageDialog() {
  $('#img-fav').addEventListener('click', async () => {
    if (!detail) return;
    const btn = $('#img-fav');
    const on = btn.getAttribute('aria-pressed') !== 'true';
    setFavButton(btn, on);
    try {
      await setFavorite(detail.renderKey, on);
      detail.favorite = on;
      onDetailFavorite?.(on);
    } catch (err) {
      setFavButton(btn, !on);
      $('#img-msg').textContent = err.message;
    }
  });
  $('#img-more-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!detail?.params) {
      $('#img-msg').textContent = 'Still loading the image details…';
      return;
    }
    const count = Number($('#img-more-count').value);
    const start = detail.nextSeed ?? detail.seed + 1;
    const spec = {
      name: `more of: ${detail.prompt}`.slice(0, 200),
      prompts: [detail.prompt],
      seeds: { start, count },
      params: detail.params,
      backend: detail.backend,
      ...(detail.model ? { model: detail.model } : {}),
    };
    try {
      const res = await api('/api/sweeps', { method: 'POST', body: spec });
      location.href = `/ui/sweeps/${enc(res.id)}`;
    } catch (err) {
      $('#img-msg').textContent = err.message;
    }
  });
  $('#img-upscale').addEventListener('click', async () => {
    if (!detail) return;
    const msg = $('#img-msg');
    try {
      const res = await api('/api/upscale', { method: 'POST', body: { keys: [detail.key || `images/${detail.renderKey}.png`] } });
      msg.replaceChildren('Upscale queued as ', h('a', { href: `/ui/sweeps/${enc(res.id)}`, text: res.id }), '.');
    } catch (err) {
      msg.textContent = err.message;
    }
  });
}

// ------------------------------------------------------------------ page: nodes

function nodesPage() {
  const tbody = $('#nodes-body');
  const msg = $('#nodes-msg');
  const history = new Map();

  function throughput(n) {
    const now = Date.now();
    const h0 = history.get(n.id) || [];
    h0.push({ t: now, done: n.jobsDone });
    while (h0.length > 2 && now - h0[0].t > 60_000) h0.shift();
    history.set(n.id, h0);
    const first = h0[0];
    const dt = (now - first.t) / 60_000;
    if (dt < 0.05) return '—';
    return `${((n.jobsDone - first.done) / dt).toFixed(1)} /min`;
  }

  const load = debounce(async () => {
    try {
      const { nodes } = await api('/api/nodes');
      if (!nodes.length) {
        tbody.replaceChildren(h('tr', {}, h('td', { colspan: 11, class: 'muted', text: 'No gpu-node has registered yet. Start one with `nightshift node start`.' })));
        return;
      }
      const fresh = nodes.map((n) => {
        const caps = n.capabilities || {};
        const jobs = n.currentJobs || [];
        return h(
          'tr',
          { dataset: { node: n.id } },
          h('th', { scope: 'row' }, n.name, h('span', { class: 'sub', text: n.id })),
          h('td', {}, h('span', { class: `badge ${n.status}`, text: n.status })),
          h('td', { text: caps.gpuName || '—' }),
          h('td', { text: caps.vramMb ? `${(caps.vramMb / 1024).toFixed(1)} GB` : '—' }),
          h('td', { text: (caps.backends || []).join(', ') || '—' }),
          h('td', { text: (caps.models || []).join(', ') || '—' }),
          h('td', { text: String(caps.slots ?? '—') }),
          h('td', {}, jobs.length ? jobs.slice(0, 3).map((jid, i) => [i ? ', ' : '', h('a', { href: `/ui/sweeps/${enc(jid.replace(/-\d+$/, ''))}`, text: jid })]) : '—', jobs.length > 3 ? ` +${jobs.length - 3}` : ''),
          h('td', { text: String(n.jobsDone ?? 0) }),
          h('td', { text: throughput(n) }),
          h('td', { title: n.lastSeen, text: fmtAgo(n.lastSeen) }),
        );
      });
      // Same nodes as before: swap only the cells that changed, so links under the pointer stay put.
      const old = [...tbody.querySelectorAll('tr[data-node]')];
      if (old.length === fresh.length && old.every((tr, i) => tr.dataset.node === fresh[i].dataset.node)) {
        old.forEach((tr, i) => [...fresh[i].children].forEach((cell, c) => tr.children[c].outerHTML !== cell.outerHTML && tr.children[c].replaceWith(cell)));
      } else {
        tbody.replaceChildren(...fresh);
      }
      showMsg(msg, `${nodes.filter((n) => n.status === 'online').length} of ${nodes.length} node(s) online.`);
    } catch (err) {
      showMsg(msg, err.message, true);
    }
  }, 50);

  openEvents('', { open: load, node: load });
  setInterval(() => document.visibilityState === 'visible' && load(), 2_000);
}

// ------------------------------------------------------------------ boot

const PAGES = { sweeps: sweepsPage, submit: submitPage, sweep: sweepPage, gallery: galleryPage, nodes: nodesPage };

async function boot() {
  updateForgetButton();
  $('#forget-token').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  setupImageDialog();
  await ensureFileSession();
  await PAGES[document.body.dataset.page]?.();
}

boot().catch((err) => toast(err.message || String(err), { error: true }));

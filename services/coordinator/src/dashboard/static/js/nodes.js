// @ts-check
// Page: the gpu-nodes, their capabilities, current jobs and throughput.
import { listNodes } from './api.js';
import { $, debounce, enc, h, messageOf, showMsg } from './dom.js';
import { openEvents } from './events.js';
import { fmtAgo } from './format.js';

/** @typedef {import('./api-types.js').FarmNode} FarmNode */
/** @typedef {import('./api-types.js').NodeModelCache} NodeModelCache */

const MB = 1024 * 1024;

/**
 * The models cell: names the node was configured with, then what its registry
 * cache holds (short hashes; ● loaded) and any download with its progress.
 * @param {string[]} names @param {NodeModelCache | null | undefined} cache
 */
function modelsCell(names, cache) {
  const short = (/** @type {string} */ hash) => hash.slice(0, 12);
  const cached = (cache?.cached ?? []).map((hash) => h('span', { class: 'sub', title: hash, text: `${hash === cache?.loaded ? '● ' : ''}${short(hash)}${hash === cache?.loaded ? ' (loaded)' : ' (cached)'}` }));
  const downloads = (cache?.downloads ?? []).map((d) => {
    const pct = d.bytesTotal ? Math.floor((d.bytesDone / d.bytesTotal) * 100) : 0;
    return h('span', { class: 'sub', title: d.hash, text: `↓ ${d.name || short(d.hash)} ${pct}% (${(d.bytesDone / MB).toFixed(1)}/${(d.bytesTotal / MB).toFixed(1)} MB)` });
  });
  if (!names.length && !cached.length && !downloads.length) return h('td', { text: '—' });
  return h('td', {}, names.join(', '), ...cached, ...downloads);
}

export function nodesPage() {
  const tbody = $('#nodes-body');
  const msg = $('#nodes-msg');
  /** Each node's recent jobs-done counts. @type {Map<string, { t: number; done: number }[]>} */
  const history = new Map();

  /** Jobs a minute over the last minute of samples. @param {FarmNode} n */
  function throughput(n) {
    const now = Date.now();
    const h0 = history.get(n.id) || [];
    h0.push({ t: now, done: n.jobsDone });
    while (h0.length > 2 && now - (h0[0]?.t ?? now) > 60_000) h0.shift();
    history.set(n.id, h0);
    const first = h0[0] ?? { t: now, done: n.jobsDone };
    const dt = (now - first.t) / 60_000;
    if (dt < 0.05) return '—';
    return `${((n.jobsDone - first.done) / dt).toFixed(1)} /min`;
  }

  const load = debounce(async () => {
    try {
      const { nodes } = await listNodes();
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
          // An online node outside its hours (or with its GPU in use, or paused) says so: "sleeping until 23:00".
          h('td', {}, n.status === 'online' && n.sleeping ? h('span', { class: 'badge paused', text: n.sleeping.label, title: n.sleeping.until ? `until ${new Date(n.sleeping.until).toLocaleString()}` : n.sleeping.reason }) : h('span', { class: `badge ${n.status}`, text: n.status })),
          // Where its onnx backend really runs: "cuda", or "cpu" when the CUDA build is missing.
          h('td', {}, caps.gpuName || '—', caps.executionProvider ? h('span', { class: 'sub', title: 'onnxruntime execution provider', text: `onnx on ${caps.executionProvider}` }) : null),
          h('td', { text: caps.vramMb ? `${(caps.vramMb / 1024).toFixed(1)} GB` : '—' }),
          h('td', { text: (caps.backends || []).join(', ') || '—' }),
          modelsCell(caps.models || [], n.models),
          h('td', { text: String(caps.slots ?? '—') }),
          h('td', {}, jobs.length ? jobs.slice(0, 3).map((jid, i) => [i ? ', ' : '', h('a', { href: `/ui/sweeps/${enc(jid.replace(/-\d+$/, ''))}`, text: jid })]) : '—', jobs.length > 3 ? ` +${jobs.length - 3}` : ''),
          h('td', { text: String(n.jobsDone ?? 0) }),
          h('td', { text: throughput(n) }),
          h('td', { title: n.lastSeen, text: fmtAgo(n.lastSeen) }),
        );
      });
      // Same nodes as before: swap only the cells that changed, so links under the pointer stay put.
      const old = [...tbody.querySelectorAll('tr[data-node]')];
      if (old.length === fresh.length && old.every((tr, i) => tr instanceof HTMLElement && tr.dataset.node === fresh[i]?.dataset.node)) {
        old.forEach((tr, i) =>
          [...(fresh[i]?.children ?? [])].forEach((cell, c) => {
            const was = tr.children[c];
            if (was && was.outerHTML !== cell.outerHTML) was.replaceWith(cell);
          }),
        );
      } else {
        tbody.replaceChildren(...fresh);
      }
      showMsg(msg, `${nodes.filter((n) => n.status === 'online').length} of ${nodes.length} node(s) online.`);
    } catch (err) {
      showMsg(msg, messageOf(err), true);
    }
  }, 50);

  openEvents('', { open: load, node: load });
  setInterval(() => document.visibilityState === 'visible' && load(), 2_000);
}

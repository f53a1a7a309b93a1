// retailcrm-sync monitoring page: a small front over the daemon's JSON API (/api/v1).
//
// Rules this file keeps:
// - data reaches the DOM as text only: elements come from createElement / createElementNS,
//   text from append(string) / textContent, attributes from setAttrs(), which refuses event
//   handlers, inline styles and links that leave the page; nothing is ever parsed as markup;
// - every action is a POST (or the API's documented method) with the token in the
//   Authorization header; the token lives in sessionStorage (this tab's session) only;
// - polls never overlap, and one failing request never stops the page.
'use strict';

(function () {
  const TOKEN_KEY = 'retailcrm-sync.api-token';
  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PAGE_SIZE = 100;
  const params = new URLSearchParams(window.location.search);
  const REFRESH_MS = clampInt(params.get('refresh'), 250, 60000, 2000);
  const nf = new Intl.NumberFormat('en-US');

  window.__rcsErrors = [];
  window.addEventListener('error', (e) => {
    window.__rcsErrors.push(String(e.message));
    showBanner('error', 'Page error: ' + e.message);
  });
  window.addEventListener('unhandledrejection', (e) => {
    const msg = e.reason && e.reason.message ? e.reason.message : String(e.reason);
    window.__rcsErrors.push(msg);
    showBanner('error', 'Page error: ' + msg);
  });

  // ---- small helpers ---------------------------------------------------------------------

  function clampInt(text, min, max, fallback) {
    const n = parseInt(text || '', 10);
    return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
  }

  function $(id) {
    return document.getElementById(id);
  }

  function setAttrs(el, attrs) {
    if (!attrs) return;
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (/^on/i.test(k) || k === 'style' || k === 'srcdoc') {
        throw new Error('refusing attribute ' + k);
      }
      if ((k === 'href' || k === 'src' || k === 'xlink:href') && !/^(#|\/(?!\/))/.test(String(v))) {
        throw new Error('refusing attribute ' + k + ' leaving the page');
      }
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }

  function fill(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  // An HTML element; strings among the children become text nodes.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    setAttrs(el, attrs);
    return fill(el, children);
  }

  // An SVG element.
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    setAttrs(el, attrs);
    return fill(el, children);
  }

  function on(el, type, fn) {
    el.addEventListener(type, fn);
    return el;
  }

  // Server clock minus ours, so ages do not depend on this machine's clock.
  let skewMs = 0;
  function now() {
    return Date.now() + skewMs;
  }
  function noteServerTime(iso) {
    const t = Date.parse(iso);
    if (Number.isFinite(t)) skewMs = t - Date.now();
  }

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (!Number.isFinite(d.getTime())) return String(iso);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function fmtDuration(secs) {
    if (secs === null || secs === undefined || !Number.isFinite(secs)) return '—';
    if (secs < 1) return Math.round(secs * 1000) + ' ms';
    if (secs < 60) return (Math.round(secs * 10) / 10) + ' s';
    const m = Math.floor(secs / 60);
    if (m < 60) return m + ' min ' + Math.floor(secs % 60) + ' s';
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return hrs + ' h ' + (m % 60) + ' min';
    return Math.floor(hrs / 24) + ' d ' + (hrs % 24) + ' h';
  }

  function fmtAgo(secs) {
    if (secs === null || secs === undefined || !Number.isFinite(secs)) return 'never';
    if (secs < 5) return 'just now';
    if (secs < 60) return Math.floor(secs) + ' s ago';
    if (secs < 3600) return Math.floor(secs / 60) + ' min ago';
    if (secs < 172800) return Math.floor(secs / 3600) + ' h ' + Math.floor((secs % 3600) / 60) + ' min ago';
    return Math.floor(secs / 86400) + ' days ago';
  }

  function agoOf(iso) {
    const t = Date.parse(iso || '');
    return Number.isFinite(t) ? Math.max(0, (now() - t) / 1000) : null;
  }

  function num(v) {
    return Number.isFinite(v) ? nf.format(v) : '—';
  }

  function projectName(id, name) {
    return name === null || name === undefined || name === '' ? 'project ' + id : String(name);
  }

  // ---- banner and notices -----------------------------------------------------------------

  function showBanner(kind, text, button) {
    const b = $('banner');
    b.className = 'banner ' + kind;
    b.replaceChildren();
    fill(b, [h('span', null, text), button]);
    b.hidden = false;
  }

  function clearBanner() {
    const b = $('banner');
    b.hidden = true;
    b.replaceChildren();
  }

  function notice(kind, text) {
    const n = h('div', { class: 'notice ' + kind, role: kind === 'error' ? 'alert' : 'status' },
      h('span', null, text),
      on(h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss' }, '×'), 'click', () => n.remove()));
    $('notices').append(n);
    setTimeout(() => n.remove(), kind === 'error' ? 15000 : 8000);
  }

  // ---- token and API ----------------------------------------------------------------------

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }
  function setToken(t) {
    try {
      sessionStorage.setItem(TOKEN_KEY, t);
    } catch (_) { /* storage off: the token is asked again next time */ }
    renderAccess();
  }
  function clearToken() {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* nothing stored */ }
    renderAccess();
  }

  let lastAccess = null; // 'anonymous' or 'token', from the overview
  let readDeclined = false; // the user cancelled the token prompt of a read view

  function renderAccess() {
    const a = $('access');
    if (!a) return;
    a.replaceChildren();
    if (getToken()) {
      fill(a, [h('span', { class: 'muted' }, 'token set'), ' ',
        on(h('button', { type: 'button', class: 'link', id: 'forget-token' }, 'Forget token'), 'click', () => {
          clearToken();
          notice('info', 'The token is forgotten; actions will ask for it again.');
          if (current) current.refresh();
        })]);
    } else {
      fill(a, [
        lastAccess === 'anonymous' ? h('span', { class: 'muted' }, 'read-only without a token') : null, ' ',
        on(h('button', { type: 'button', class: 'link', id: 'enter-token' }, 'Enter token'), 'click', async () => {
          if (await askToken('Enter the API token to use actions (and read views that need it).')) {
            if (current) current.refresh();
          }
        })]);
    }
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function request(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let resp;
    try {
      resp = await fetch('/api/v1' + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
    } catch (e) {
      throw new ApiError(0, 'network', 'cannot reach the daemon (' + e.message + ')');
    }
    let json = null;
    try {
      json = await resp.json();
    } catch (_) { /* not JSON */ }
    if (resp.ok && json && json.ok) return json.data;
    const err = json && json.error ? json.error : { code: 'http_' + resp.status, message: 'HTTP ' + resp.status };
    throw new ApiError(resp.status, String(err.code), String(err.message));
  }

  // Runs `call`; on 401 asks for the token and runs it again (a refused token is forgotten).
  async function withToken(call, why, isRead) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await call();
      } catch (e) {
        if (!(e instanceof ApiError) || e.status !== 401 || attempt >= 5) throw e;
        const refused = !!getToken();
        clearToken();
        if (isRead && readDeclined && !refused) throw e;
        const ok = await askToken((refused ? 'That token was refused. ' : '') + why);
        if (!ok) {
          if (isRead) readDeclined = true;
          throw e;
        }
      }
    }
  }

  function read(path) {
    return withToken(() => request('GET', path), 'The read views need the API token on this listener.', true);
  }

  // An action: the token first (asked when missing), then the call; failures become notices.
  async function act(label, method, path, body) {
    if (!getToken() && !(await askToken(label + ' needs the API token.'))) return null;
    try {
      return await withToken(() => request(method, path, body), label + ' needs the API token.', false);
    } catch (e) {
      notice('error', label + ' failed: ' + e.message);
      return null;
    }
  }

  let tokenPrompt = null;
  function askToken(reason) {
    if (tokenPrompt) return tokenPrompt;
    const dlg = $('token-dialog');
    const input = $('token-input');
    $('token-reason').textContent = reason;
    input.value = '';
    tokenPrompt = new Promise((resolve) => {
      const ok = $('token-ok');
      const cancel = $('token-cancel');
      const finish = (accepted) => {
        ok.removeEventListener('click', onOk);
        cancel.removeEventListener('click', onCancel);
        input.removeEventListener('keydown', onKey);
        dlg.removeEventListener('cancel', onEscape);
        if (dlg.open) dlg.close();
        tokenPrompt = null;
        if (accepted) readDeclined = false;
        resolve(accepted);
      };
      const onOk = () => {
        const t = input.value.trim();
        if (!t) {
          input.focus();
          return;
        }
        setToken(t);
        finish(true);
      };
      const onCancel = () => finish(false);
      const onKey = (e) => {
        if (e.key === 'Enter') {
          e.preventDefault();
          onOk();
        }
      };
      const onEscape = (e) => {
        e.preventDefault();
        finish(false);
      };
      ok.addEventListener('click', onOk);
      cancel.addEventListener('click', onCancel);
      input.addEventListener('keydown', onKey);
      dlg.addEventListener('cancel', onEscape);
      dlg.showModal();
      input.focus();
    });
    return tokenPrompt;
  }

  function confirmAction(title, text, okLabel) {
    const dlg = $('confirm-dialog');
    $('confirm-title').textContent = title;
    $('confirm-text').textContent = text;
    const ok = $('confirm-ok');
    const cancel = $('confirm-cancel');
    ok.textContent = okLabel;
    return new Promise((resolve) => {
      const finish = (yes) => {
        ok.removeEventListener('click', onOk);
        cancel.removeEventListener('click', onCancel);
        dlg.removeEventListener('cancel', onEscape);
        if (dlg.open) dlg.close();
        resolve(yes);
      };
      const onOk = () => finish(true);
      const onCancel = () => finish(false);
      const onEscape = (e) => {
        e.preventDefault();
        finish(false);
      };
      ok.addEventListener('click', onOk);
      cancel.addEventListener('click', onCancel);
      dlg.addEventListener('cancel', onEscape);
      dlg.showModal();
      cancel.focus();
    });
  }

  function readFailed(e) {
    if (e instanceof ApiError && e.status === 401) {
      showBanner('warn', 'These views need the API token on this listener. ',
        on(h('button', { type: 'button', id: 'banner-token' }, 'Enter API token'), 'click', async () => {
          readDeclined = false;
          if (await askToken('The read views need the API token on this listener.') && current) current.refresh();
        }));
    } else if (e instanceof ApiError && e.status === 0) {
      showBanner('error', 'Cannot reach the daemon; retrying. ' + e.message);
    } else {
      showBanner('error', e.message || String(e));
    }
  }

  // Calls `fn` now and every `ms` after it finishes; `kick()` runs it at once.
  function poller(fn, ms) {
    let timer = null;
    let stopped = false;
    let busy = false;
    let again = false;
    async function tick() {
      clearTimeout(timer);
      timer = null;
      if (stopped) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await fn();
      } catch (e) {
        readFailed(e);
      }
      busy = false;
      if (stopped) return;
      if (again) {
        again = false;
        tick();
        return;
      }
      timer = setTimeout(tick, ms);
    }
    tick();
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
      kick: tick,
    };
  }

  // ---- pieces shared by both views --------------------------------------------------------

  const HEALTH_LABEL = {
    failed: 'failed', dead: 'dead jobs', error: 'error', stale: 'stale', retrying: 'retrying',
    late: 'late', paused: 'paused', running: 'running', starting: 'starting', ok: 'ok',
  };

  function stateBadges(state, health) {
    const out = [h('span', { class: 'badge state-' + state }, state)];
    if (health && HEALTH_LABEL[health] && health !== state && health !== 'ok') {
      out.push(h('span', { class: 'badge health-' + health }, HEALTH_LABEL[health]));
    }
    return out;
  }

  function progress(job) {
    const done = Number(job.done) || 0;
    const total = Number.isFinite(job.total) && job.total > 0 ? job.total : null;
    const pct = total ? Math.min(100, Math.floor((done * 100) / total)) : null;
    const bar = h('div', {
      class: 'bar' + (pct === null ? ' indeterminate' : ''),
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': total === null ? null : total,
      'aria-valuenow': done,
    });
    const fillEl = h('div', { class: 'fill' });
    if (pct !== null) fillEl.style.width = pct + '%';
    bar.append(fillEl);
    const what = [job.kind, job.stream, job.phase].filter((x) => x).join(' · ');
    const count = total ? num(done) + ' / ' + num(total) + ' (' + pct + '%)' : num(done) + ' done';
    return h('div', { class: 'progress', 'data-done': done, 'data-total': total === null ? '' : total },
      bar, h('span', { class: 'progress-text' }, what + ': ' + count));
  }

  function errorText(err) {
    return h('span', { class: 'error-line' + (err.permanent ? ' permanent' : ''), title: fmtTime(err.at) },
      err.permanent ? h('span', { class: 'tag' }, 'permanent') : null,
      String(err.message || ''), ' ', h('span', { class: 'sub' }, fmtAgo(agoOf(err.at))));
  }

  // ---- overview ---------------------------------------------------------------------------

  function overviewView(hash) {
    const qs = new URLSearchParams((hash.split('?')[1]) || '');
    const state = { q: qs.get('q') || '', filter: qs.get('state') || 'all', offset: 0 };
    const input = h('input', {
      type: 'search', id: 'filter', placeholder: 'Filter by name, id or state',
      'aria-label': 'Filter projects', autocomplete: 'off', spellcheck: 'false',
    });
    input.value = state.q;
    const chips = h('div', { class: 'chips', role: 'group', 'aria-label': 'Show' });
    const summary = h('p', { class: 'summary', id: 'summary' });
    const tbody = h('tbody', { id: 'project-rows' });
    const head = ['Project', 'State', 'Freshness', 'Last error', 'Queue', 'Dead jobs', 'History lag'];
    const table = h('table', { class: 'projects', id: 'projects' },
      h('thead', null, h('tr', null, head.map((t) => h('th', { scope: 'col' }, t)))), tbody);
    const empty = h('p', { class: 'empty', id: 'no-match', hidden: true }, 'No project matches.');
    const prev = h('button', { type: 'button', id: 'prev-page' }, '← Previous');
    const next = h('button', { type: 'button', id: 'next-page' }, 'Next →');
    const pager = h('div', { class: 'pager' }, prev, next);
    $('view').replaceChildren(h('section', { class: 'overview' },
      h('div', { class: 'toolbar' }, h('h1', null, 'Projects'), input), chips, summary,
      h('div', { class: 'table-wrap' }, table), empty, pager));

    function syncHash() {
      const p = new URLSearchParams();
      if (state.q) p.set('q', state.q);
      if (state.filter !== 'all') p.set('state', state.filter);
      const text = p.toString();
      history.replaceState(null, '', window.location.pathname + window.location.search + '#/' + (text ? '?' + text : ''));
    }

    let debounce = null;
    on(input, 'input', () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => {
        state.q = input.value.trim();
        state.offset = 0;
        syncHash();
        poll.kick();
      }, 250);
    });
    on(prev, 'click', () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      poll.kick();
    });
    on(next, 'click', () => {
      state.offset += PAGE_SIZE;
      poll.kick();
    });

    let renders = 0;
    function render(d) {
      noteServerTime(d.now);
      lastAccess = d.access;
      if (!getToken()) renderAccess();
      $('daemon').textContent = 'v' + d.daemon.version + ' · up since ' + fmtTime(d.daemon.started_at);
      const problems = [].concat(d.daemon.warnings || [], d.daemon.config_error ? ['config not reloaded: ' + d.daemon.config_error] : []);
      if (problems.length) showBanner('warn', problems.join(' · '));
      else clearBanner();

      const st = d.states || {};
      const chipDefs = [
        ['all', 'All', d.total], ['problems', 'Problems', d.problems], ['running', 'Running', st.running || 0],
        ['paused', 'Paused', st.paused || 0], ['failed', 'Failed', st.failed || 0],
      ];
      chips.replaceChildren(...chipDefs.map(([key, label, n]) => on(h('button', {
        type: 'button', class: 'chip' + (key === 'problems' && n > 0 ? ' alarm' : ''),
        'data-filter': key, 'aria-pressed': state.filter === key ? 'true' : 'false',
      }, label + ' ', h('span', { class: 'count' }, num(n))), 'click', () => {
        state.filter = key;
        state.offset = 0;
        syncHash();
        poll.kick();
      })));

      const rows = d.projects || [];
      tbody.replaceChildren(...rows.map((p) => projectRow(p)));
      empty.hidden = rows.length > 0;
      table.hidden = rows.length === 0;
      const from = rows.length ? d.offset + 1 : 0;
      summary.textContent = 'Showing ' + num(from) + '–' + num(d.offset + rows.length) + ' of ' +
        num(d.matched) + (d.matched !== d.total ? ' matching (' + num(d.total) + ' projects)' : ' projects') +
        ' · worst first · updated ' + fmtTime(d.now).slice(11);
      prev.disabled = d.offset === 0;
      next.disabled = d.offset + rows.length >= d.matched;
      pager.hidden = d.matched <= d.limit && d.offset === 0;
      renders += 1;
      document.documentElement.dataset.renders = String(renders);
    }

    async function load() {
      if (state.offset < 0) state.offset = 0;
      const p = new URLSearchParams({ q: state.q, state: state.filter, offset: String(state.offset), limit: String(PAGE_SIZE) });
      const d = await read('/overview?' + p.toString());
      if (d.offset > 0 && (d.projects || []).length === 0 && d.matched > 0) {
        state.offset = Math.floor((d.matched - 1) / PAGE_SIZE) * PAGE_SIZE;
        poll.kick();
        return;
      }
      const t0 = performance.now();
      render(d);
      document.documentElement.dataset.renderMs = String(Math.round(performance.now() - t0));
      document.documentElement.dataset.view = 'overview';
    }

    const poll = poller(load, REFRESH_MS);
    return { stop: () => poll.stop(), refresh: () => poll.kick() };
  }

  function projectRow(p) {
    const tr = h('tr', { 'data-project-id': p.id, 'data-health': p.health, class: 'row health-' + p.health });
    on(tr, 'click', (e) => {
      if (!(e.target instanceof Element) || !e.target.closest('a, button')) {
        window.location.hash = '#/projects/' + encodeURIComponent(p.id);
      }
    });
    const fresh = p.fresh === 'never'
      ? 'never synced'
      : fmtAgo(p.age_secs);
    // Each cell's content in one span, so a narrow window can lay label and value side by side.
    const td = (attrs, ...children) => h('td', attrs, h('span', { class: 'v' }, children));
    tr.append(
      td({ class: 'name', 'data-label': 'Project' },
        h('a', { href: '#/projects/' + encodeURIComponent(p.id), class: 'project-link' }, projectName(p.id, p.name)),
        h('span', { class: 'id' }, '#' + p.id)),
      td({ class: 'state', 'data-label': 'State', 'data-state': p.state }, stateBadges(p.state, p.health),
        p.job ? progress(p.job) : null),
      td({
        class: 'fresh fresh-' + p.fresh, 'data-label': 'Freshness', 'data-fresh': p.fresh,
        title: p.fresh_as_of
          ? 'every change made before ' + fmtTime(p.fresh_as_of) + ' is in Postgres; syncs every ' + p.interval_min + ' min'
          : 'never synced',
      }, h('span', { class: 'dot' }), fresh),
      td({ class: 'error', 'data-label': 'Last error' }, p.error ? errorText(p.error) : h('span', { class: 'muted' }, '—')),
      td({ class: 'num queue', 'data-label': 'Queue' }, num(p.queue),
        p.delayed ? h('span', { class: 'sub' }, ' +' + num(p.delayed) + ' delayed') : null),
      td({ class: 'num dead' + (p.dead ? ' bad' : ''), 'data-label': 'Dead jobs' }, num(p.dead)),
      td({ class: 'num lag', 'data-label': 'History lag' }, p.lag === null || p.lag === undefined ? '—' : num(p.lag)));
    return tr;
  }

  // ---- project page -----------------------------------------------------------------------

  function projectView(id) {
    const base = '/projects/' + encodeURIComponent(id);
    let status = null;
    const title = h('h1', { id: 'project-name' }, 'project ' + id);
    const badges = h('span', { class: 'badges', id: 'project-state' });
    const syncBtn = h('button', { type: 'button', id: 'sync-now', class: 'primary' }, 'Sync now');
    const resyncBtn = h('button', { type: 'button', id: 'resync' }, 'Full resync…');
    const pauseBtn = h('button', { type: 'button', id: 'pause-resume' }, 'Pause');
    const gone = h('p', { class: 'muted', id: 'not-running', hidden: true },
      'The daemon does not run this project (inactive, removed, or not started yet); its history is below.');
    const stats = h('dl', { class: 'stats', id: 'stats' });
    const running = h('div', { class: 'running', id: 'running' });
    const lastError = h('div', { class: 'last-error', id: 'last-error' });
    const chart = h('div', { class: 'chart', id: 'runs-chart' });
    const runsBody = h('tbody', { id: 'run-rows' });
    const deadBody = h('tbody', { id: 'dead-job-rows' });
    const queuedBody = h('tbody', { id: 'queued-job-rows' });
    const poisonBody = h('tbody', { id: 'poison-rows' });
    const poisonNote = h('p', { class: 'muted', id: 'poison-note' });
    const table = (id2, cols, body) => h('div', { class: 'table-wrap' },
      h('table', { class: 'list', id: id2 }, h('thead', null, h('tr', null, cols.map((c) => h('th', { scope: 'col' }, c)))), body));

    $('view').replaceChildren(h('section', { class: 'project' },
      h('a', { href: '#/', class: 'back', id: 'back' }, '← All projects'),
      h('div', { class: 'project-head' },
        h('div', null, title, h('span', { class: 'id' }, '#' + id), ' ', badges),
        h('div', { class: 'actions' }, syncBtn, resyncBtn, pauseBtn)),
      gone, running, stats, lastError,
      h('h2', null, 'Last 50 runs'), chart,
      table('runs', ['Started', 'Kind', 'Trigger', 'Duration', 'Outcome', 'Fetched', 'Created', 'Updated', 'Deleted', 'Poison', 'Error'], runsBody),
      h('h2', null, 'Dead jobs'),
      table('dead-jobs', ['Job', 'Kind', 'Attempts', 'Error', 'Enqueued', ''], deadBody),
      h('h2', null, 'Queued and recent jobs'),
      table('queued-jobs', ['State', 'Job', 'Kind', 'Attempts', 'Enqueued', 'Runs at', 'Error'], queuedBody),
      h('h2', null, 'Poison records'), poisonNote,
      table('poison', ['Stored', 'Stream', 'Entity id', 'Reason', 'Raw JSON'], poisonBody)));
    document.documentElement.dataset.view = 'project';

    on(syncBtn, 'click', async () => {
      syncBtn.disabled = true;
      const r = await act('Sync now', 'POST', base + '/jobs', { kind: 'sync_all' });
      syncBtn.disabled = false;
      if (r) {
        notice('ok', r.coalesced ? 'A sync was already waiting: job ' + r.job_id : 'Sync queued: job ' + r.job_id);
        fast.kick();
      }
    });
    on(resyncBtn, 'click', async () => {
      const name = projectName(id, status && status.name);
      const yes = await confirmAction('Full resync of ' + name,
        'Forget the stored cursors and read the whole RetailCRM account again, as on the first day. ' +
        'Rows stay in place while it runs and are upserted; it takes as long as a first sync.',
        'Start full resync');
      if (!yes) return;
      const r = await act('Full resync', 'POST', base + '/jobs', { kind: 'resync_all' });
      if (r) {
        notice('ok', (r.coalesced ? 'A full resync was already waiting: job ' : 'Full resync queued: job ') + r.job_id);
        fast.kick();
      }
    });
    on(pauseBtn, 'click', async () => {
      const resume = status && status.state === 'paused';
      pauseBtn.disabled = true;
      const r = await act(resume ? 'Resume' : 'Pause', 'POST', base + (resume ? '/resume' : '/pause'));
      pauseBtn.disabled = false;
      if (r) {
        notice('ok', resume ? 'Resumed.' : 'Paused: no jobs are taken until you resume.');
        fast.kick();
      }
    });

    let lastStatusJson = '';
    let lastJobsJson = '';
    let wasRunning = false;

    function renderStatus(p) {
      status = p;
      title.textContent = projectName(id, p.name);
      document.title = projectName(id, p.name) + ' · retailcrm-sync';
      badges.replaceChildren(...stateBadges(p.state, null));
      pauseBtn.textContent = p.state === 'paused' ? 'Resume' : 'Pause';
      gone.hidden = true;
      const fresh = p.fresh_as_of || p.last_success_at;
      const stat = (label, value, extra) => h('div', { class: 'stat' }, h('dt', null, label), h('dd', extra || null, value));
      stats.replaceChildren();
      fill(stats, [
        stat('Fresh as of', fresh ? fmtAgo(agoOf(fresh)) : 'never', { title: fresh ? fmtTime(fresh) : '' }),
        stat('Last success', fmtTime(p.last_success_at)),
        stat('Next scheduled', p.next_run_at ? fmtTime(p.next_run_at) : '—'),
        stat('Waiting', num(p.queue_depth)),
        stat('Delayed', num(p.delayed)),
        stat('Dead jobs', num(p.dead_jobs), { class: p.dead_jobs ? 'bad' : null, id: 'stat-dead' }),
        stat('History lag', p.cursor_lag === null || p.cursor_lag === undefined ? '—' : num(p.cursor_lag)),
        stat('Restarts', num(p.restarts))]);
      if (p.running_job) {
        running.replaceChildren(h('h2', null, 'Running'),
          h('p', null, p.running_job.kind + ' · job ' + p.running_job.job_id + ' · started ' + fmtAgo(agoOf(p.running_job.started_at))),
          progress(Object.assign({ kind: p.running_job.kind }, p.running_job.progress)));
        running.hidden = false;
      } else {
        running.replaceChildren();
        running.hidden = true;
      }
      const e = p.last_error;
      if (e) {
        const old = p.last_success_at && Date.parse(p.last_success_at) > Date.parse(e.at);
        lastError.replaceChildren(h('h2', null, 'Last error'),
          h('p', { class: old ? 'muted' : 'bad' }, errorText(e), old ? ' (before the last success)' : null));
        lastError.hidden = false;
      } else {
        lastError.replaceChildren();
        lastError.hidden = true;
      }
    }

    function renderJobs(list) {
      const jobs = list.jobs || [];
      const dead = jobs.filter((j) => j.state === 'dead');
      const others = jobs.filter((j) => j.state !== 'dead');
      deadBody.replaceChildren(...(dead.length ? dead.map((j) => {
        const btn = h('button', { type: 'button', class: 'retry', 'data-job-id': j.job_id }, 'Retry');
        on(btn, 'click', async () => {
          btn.disabled = true;
          const r = await act('Retry', 'POST', base + '/jobs/' + encodeURIComponent(j.job_id) + '/retry');
          if (r) {
            notice('ok', 'Job ' + j.job_id + ' is waiting again.');
            fast.kick();
          } else {
            btn.disabled = false;
          }
        });
        return h('tr', { 'data-job-id': j.job_id },
          h('td', { class: 'mono', 'data-label': 'Job' }, j.job_id),
          h('td', { 'data-label': 'Kind' }, j.kind),
          h('td', { class: 'num', 'data-label': 'Attempts' }, num(j.attempts)),
          h('td', { class: 'error', 'data-label': 'Error' }, j.last_error || '—'),
          h('td', { 'data-label': 'Enqueued' }, fmtTime(j.enqueued_at)),
          h('td', null, btn));
      }) : [h('tr', { class: 'none' }, h('td', { colspan: 6, class: 'muted' }, 'No dead jobs.'))]));
      const order = { running: 0, waiting: 1, delayed: 2, completed: 3 };
      others.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9));
      queuedBody.replaceChildren(...(others.length ? others.map((j) => h('tr', { 'data-job-id': j.job_id, 'data-state': j.state },
        h('td', { 'data-label': 'State' }, h('span', { class: 'badge job-' + j.state }, j.state)),
        h('td', { class: 'mono', 'data-label': 'Job' }, j.job_id),
        h('td', { 'data-label': 'Kind' }, j.kind + (j.entity_id ? ' #' + j.entity_id : '')),
        h('td', { class: 'num', 'data-label': 'Attempts' }, num(j.attempts)),
        h('td', { 'data-label': 'Enqueued' }, fmtTime(j.enqueued_at)),
        h('td', { 'data-label': 'Runs at' }, fmtTime(j.run_at)),
        h('td', { class: 'error', 'data-label': 'Error' }, j.last_error || ''))) :
        [h('tr', { class: 'none' }, h('td', { colspan: 7, class: 'muted' }, 'Nothing queued.'))]));
    }

    async function loadFast() {
      const [st, jobs] = await Promise.allSettled([read(base), read(base + '/jobs?limit=50')]);
      if (st.status === 'fulfilled') {
        const text = JSON.stringify(st.value);
        if (text !== lastStatusJson) {
          lastStatusJson = text;
          renderStatus(st.value);
        }
        const isRunning = !!st.value.running_job;
        if (wasRunning && !isRunning) slow.kick();
        wasRunning = isRunning;
      } else if (st.reason instanceof ApiError && st.reason.status === 404) {
        status = null;
        lastStatusJson = '';
        gone.hidden = false;
        badges.replaceChildren(h('span', { class: 'badge state-inactive' }, 'not running'));
        running.hidden = true;
      } else {
        throw st.reason;
      }
      if (jobs.status === 'fulfilled') {
        const text = JSON.stringify(jobs.value);
        if (text !== lastJobsJson) {
          lastJobsJson = text;
          renderJobs(jobs.value);
        }
      } else if (!(jobs.reason instanceof ApiError && jobs.reason.status === 404)) {
        throw jobs.reason;
      }
      clearBanner();
    }

    let lastRunsJson = '';
    let lastPoisonJson = '';
    const openRecords = new Set();

    function renderRuns(runs) {
      runsBody.replaceChildren(...(runs.length ? runs.map((r) => {
        const c = runCounts(r);
        const secs = runSecs(r);
        const count = (k) => h('td', { class: 'num', 'data-label': k[0].toUpperCase() + k.slice(1) }, num(c[k] || 0));
        return h('tr', { 'data-run-id': r.id, class: 'outcome-' + r.outcome },
          h('td', { 'data-label': 'Started' }, fmtTime(r.started_at)),
          h('td', { 'data-label': 'Kind' }, r.job_kind),
          h('td', { 'data-label': 'Trigger' }, r.trigger),
          h('td', { class: 'num', 'data-label': 'Duration' }, (r.finished_at ? '' : 'running ') + fmtDuration(secs)),
          h('td', { 'data-label': 'Outcome' }, h('span', { class: 'badge outcome-' + r.outcome }, r.outcome)),
          count('fetched'), count('created'), count('updated'), count('deleted'), count('poison'),
          h('td', { class: 'error', 'data-label': 'Error' }, r.error || ''));
      }) : [h('tr', { class: 'none' }, h('td', { colspan: 11, class: 'muted' }, 'No runs yet.'))]));
      chart.replaceChildren(runsChart(runs));
    }

    function renderPoison(d) {
      const records = d.records || [];
      poisonNote.textContent = d.total > records.length
        ? 'The newest ' + num(records.length) + ' of ' + num(d.total) + ' records set aside.'
        : num(d.total) + (d.total === 1 ? ' record' : ' records') + ' set aside: they could not be decoded or mapped, and are kept with their raw JSON.';
      poisonBody.replaceChildren(...(records.length ? records.map((r) => {
        let raw;
        try {
          raw = JSON.stringify(r.raw, null, 2);
        } catch (_) {
          raw = String(r.raw);
        }
        const details = h('details', { 'data-record-id': r.id, open: openRecords.has(r.id) },
          h('summary', null, 'raw JSON (' + num(raw.length) + ' characters)'), h('pre', null, raw));
        on(details, 'toggle', () => {
          if (details.open) openRecords.add(r.id);
          else openRecords.delete(r.id);
        });
        return h('tr', { 'data-record-id': r.id },
          h('td', { 'data-label': 'Stored' }, fmtTime(r.created_at)),
          h('td', { 'data-label': 'Stream' }, r.stream),
          h('td', { class: 'num', 'data-label': 'Entity id' }, r.entity_id === null || r.entity_id === undefined ? '—' : String(r.entity_id)),
          h('td', { class: 'reason', 'data-label': 'Reason' }, r.reason),
          h('td', { class: 'raw', 'data-label': 'Raw JSON' }, details));
      }) : [h('tr', { class: 'none' }, h('td', { colspan: 5, class: 'muted' }, 'No poison records.'))]));
    }

    async function loadSlow() {
      const [runs, poison] = await Promise.all([read(base + '/runs?limit=50'), read(base + '/dead_records?limit=50')]);
      const runsText = JSON.stringify(runs.runs);
      const anyRunning = (runs.runs || []).some((r) => !r.finished_at);
      if (runsText !== lastRunsJson || anyRunning) {
        lastRunsJson = runsText;
        renderRuns(runs.runs || []);
      }
      const poisonText = JSON.stringify(poison);
      if (poisonText !== lastPoisonJson) {
        lastPoisonJson = poisonText;
        renderPoison(poison);
      }
    }

    const fast = poller(loadFast, REFRESH_MS);
    const slow = poller(loadSlow, Math.max(1000, REFRESH_MS * 2));
    return {
      stop() {
        fast.stop();
        slow.stop();
        document.title = 'retailcrm-sync';
      },
      refresh() {
        fast.kick();
        slow.kick();
      },
    };
  }

  // A run's counters: `{counts: {...}, duration_ms}` as the job runner stores them (a bare
  // object of counters is read too).
  function runCounts(r) {
    const c = r.counts && typeof r.counts === 'object' ? r.counts : {};
    return c.counts && typeof c.counts === 'object' ? c.counts : c;
  }

  function runSecs(r) {
    const ms = r.counts && Number.isFinite(r.counts.duration_ms) ? r.counts.duration_ms : null;
    if (ms !== null && r.finished_at) return ms / 1000;
    const end = r.finished_at ? Date.parse(r.finished_at) : now();
    return Math.max(0, (end - Date.parse(r.started_at)) / 1000);
  }

  // Durations (bars, coloured by outcome) and rows written (line) of the runs, oldest left.
  function runsChart(runsNewestFirst) {
    const runs = runsNewestFirst.slice().reverse();
    const W = 760;
    const H = 200;
    const L = 56;
    const R = 64;
    const T = 18;
    const B = 30;
    const innerW = W - L - R;
    const innerH = H - T - B;
    const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'runs-chart', role: 'img', 'aria-label': 'Durations and rows of the last runs' });
    if (!runs.length) {
      svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'No runs yet'));
      return svg;
    }
    const data = runs.map((r) => {
      const c = runCounts(r);
      return {
        run: r,
        secs: runSecs(r),
        rows: (c.created || 0) + (c.updated || 0) + (c.deleted || 0),
      };
    });
    const maxSecs = Math.max(0.001, ...data.map((d) => d.secs));
    const maxRows = Math.max(1, ...data.map((d) => d.rows));
    const slot = innerW / data.length;
    const barW = Math.max(2, Math.min(28, slot * 0.7));
    svg.append(
      s('line', { x1: L, y1: T + innerH, x2: W - R, y2: T + innerH, class: 'axis-line' }),
      s('line', { x1: L, y1: T, x2: W - R, y2: T, class: 'grid-line' }),
      s('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'axis dur' }, fmtDuration(maxSecs)),
      s('text', { x: L - 6, y: T + innerH, 'text-anchor': 'end', class: 'axis dur' }, '0'),
      s('text', { x: W - 4, y: T + 4, 'text-anchor': 'end', class: 'axis rows' }, num(maxRows) + ' rows'),
      s('text', { x: W - R + 6, y: T + innerH, class: 'axis rows' }, '0'),
      s('text', { x: L, y: H - 8, class: 'axis' }, fmtTime(data[0].run.started_at)),
      s('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'axis' }, fmtTime(data[data.length - 1].run.started_at)));
    const points = [];
    data.forEach((d, i) => {
      const x = L + i * slot + (slot - barW) / 2;
      const bh = Math.max(1, (d.secs / maxSecs) * innerH);
      const tip = fmtTime(d.run.started_at) + ' · ' + d.run.job_kind + ' · ' + d.run.outcome + ' · ' +
        fmtDuration(d.secs) + ' · ' + num(d.rows) + ' rows written';
      svg.append(s('rect', { x: x.toFixed(1), y: (T + innerH - bh).toFixed(1), width: barW.toFixed(1), height: bh.toFixed(1), class: 'bar outcome-' + d.run.outcome, 'data-run-id': d.run.id },
        s('title', null, tip)));
      points.push([L + i * slot + slot / 2, T + innerH - (d.rows / maxRows) * innerH, tip]);
    });
    svg.append(s('polyline', { points: points.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '), class: 'rows-line' }));
    for (const [x, y, tip] of points) {
      svg.append(s('circle', { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, class: 'rows-dot' }, s('title', null, tip)));
    }
    const wrap = h('figure', { class: 'chart-figure' }, svg,
      h('figcaption', null, h('span', { class: 'key bar-key' }), ' duration (green: succeeded, red: failed, grey: cancelled or abandoned, blue: running)  ',
        h('span', { class: 'key line-key' }), ' rows written (created + updated + deleted)'));
    return wrap;
  }

  // ---- router -----------------------------------------------------------------------------

  let current = null;
  function route() {
    if (current) current.stop();
    current = null;
    clearBanner();
    const hash = window.location.hash || '#/';
    const m = /^#\/projects\/(\d+)$/.exec(hash.split('?')[0]);
    current = m ? projectView(Number(m[1])) : overviewView(hash);
  }

  window.addEventListener('hashchange', route);
  renderAccess();
  route();
})();

// The operator's page: the pool and the parked requests, from the notifier's admin API (/admin/api), refreshed every
// two seconds. The token (an admin role's) stays in this tab's sessionStorage. Every value reaches the page as text.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    signInForm: $('sign-in-form'), token: $('token'), userId: $('user-id'), devSignIn: $('dev-sign-in'),
    account: $('account'), signedInAs: $('signed-in-as'), refreshed: $('refreshed'), signOut: $('sign-out'),
    error: $('error'), errorText: $('error-text'), view: $('view'), summary: $('summary'),
    members: $('members'), partitions: $('partitions'), parked: $('parked'), noParked: $('no-parked'),
  };
  const storageKey = 'workers.admin.token';
  let timer = null;

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  function showError(error) {
    ui.errorText.textContent = error ? `${error.code ? error.code + ': ' : ''}${error.message}` : '';
    ui.error.hidden = !error;
  }

  async function api(method, path) {
    const token = sessionStorage.getItem(storageKey);
    const response = await fetch(path, { method, headers: { Accept: 'application/json', Authorization: `Bearer ${token}` } });
    if (response.status === 401) throw new ApiError('unauthorized', 'the token was refused (expired, or not for this notifier)');
    if (response.status === 403) throw new ApiError('forbidden', 'this token does not carry the admin role');
    if (!response.ok) {
      let problem = {};
      try { problem = await response.json(); } catch { /* not a problem-details body */ }
      throw new ApiError(problem.code || `http_${response.status}`, problem.detail || problem.title || response.statusText);
    }
    return response.status === 204 ? null : response.json();
  }

  function subject(token) {
    try {
      return JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))).sub || '?';
    } catch {
      return '?';
    }
  }

  function row(cells, testId) {
    const tr = document.createElement('tr');
    if (testId) tr.dataset.testid = testId;
    for (const cell of cells) {
      const td = document.createElement('td');
      if (cell instanceof Node) td.append(cell);
      else if (cell && typeof cell === 'object') {
        td.textContent = cell.text;
        if (cell.className) td.className = cell.className;
      } else td.textContent = cell ?? '';
      tr.append(td);
    }
    return tr;
  }

  function button(label, testId, className, action) {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.dataset.testid = testId;
    if (className) b.className = className;
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        await action();
        showError(null);
        await refresh();
      } catch (error) {
        showError(error);
        b.disabled = false;
      }
    });
    return b;
  }

  function render(pool, parked) {
    ui.summary.textContent = `${pool.members.length} members · error queue ${pool.errorQueue} · parked ${pool.parked}`;
    ui.members.replaceChildren(...pool.members.map((m) => {
      const tr = row([{ text: m.workerId, className: 'id' }, `${m.heartbeatAgeSeconds.toFixed(1)} s ago`, m.partitions, m.lanes, m.waiting], 'member');
      // A member that missed several heartbeats is about to lose its partitions.
      if (m.heartbeatAgeSeconds > 10) tr.classList.add('stale');
      return tr;
    }));
    ui.partitions.replaceChildren(...pool.partitions.map((p) =>
      row([p.partition, { text: p.owner ?? '(none)', className: 'id' }, p.epoch ?? '-', p.ready, p.unacked], 'partition')));
    ui.parked.replaceChildren(...parked.map((p) => {
      const path = `/admin/api/parked/${p.sessionId}/${p.requestId}`;
      const actions = document.createElement('span');
      actions.append(
        button('Replay', 'replay', '', () => api('POST', `${path}/replay`)),
        button('Discard', 'discard', 'danger', () => {
          if (!confirm(`Discard request ${p.requestId}? Its text is deleted.`)) return Promise.resolve();
          return api('DELETE', path);
        }));
      return row([{ text: p.sessionId, className: 'id' }, { text: p.requestId, className: 'id' }, p.ownerId, p.code, p.attempts,
        new Date(p.parkedAt).toLocaleString(), `${p.reason} (${p.textLength} characters)`, actions], 'parked-request');
    }));
    ui.noParked.hidden = parked.length > 0;
    ui.refreshed.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async function refresh() {
    const [pool, parked] = await Promise.all([api('GET', '/admin/api/pool'), api('GET', '/admin/api/parked')]);
    render(pool, parked);
  }

  async function open(token) {
    sessionStorage.setItem(storageKey, token);
    ui.signedInAs.textContent = subject(token);
    try {
      await refresh();
    } catch (error) {
      showError(error);
      if (error.code === 'unauthorized' || error.code === 'forbidden') {
        signOut(false);
        return;
      }
    }
    showError(null);
    ui.signInForm.hidden = true;
    ui.account.hidden = false;
    ui.view.hidden = false;
    clearInterval(timer);
    timer = setInterval(() => refresh().then(() => showError(null), showError), 2000);
  }

  function signOut(clearError = true) {
    clearInterval(timer);
    sessionStorage.removeItem(storageKey);
    ui.signInForm.hidden = false;
    ui.account.hidden = true;
    ui.view.hidden = true;
    if (clearError) showError(null);
  }

  ui.signInForm.addEventListener('submit', (e) => {
    e.preventDefault();
    if (ui.token.value.trim()) open(ui.token.value.trim());
  });
  ui.devSignIn.addEventListener('click', async () => {
    const userId = ui.userId.value.trim();
    if (!userId) {
      showError(new ApiError('invalid_request', 'enter an operator id'));
      return;
    }
    const response = await fetch('/dev/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ userId, admin: true }),
    });
    if (!response.ok) {
      showError(new ApiError(response.status === 404 ? 'not_available' : `http_${response.status}`,
        response.status === 404 ? 'development sign-in exists only when the notifier runs in Development' : response.statusText));
      return;
    }
    open((await response.json()).token);
  });
  ui.signOut.addEventListener('click', () => signOut());

  const saved = sessionStorage.getItem(storageKey);
  if (saved) open(saved);
})();

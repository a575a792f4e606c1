// The notifier's chat page: sign in with a development token, manage sessions over the REST API, send messages and
// watch replies stream over the SignalR hub (/hubs/chat). No framework; every piece of data reaches the DOM through
// textContent, never as HTML.
'use strict';

(() => {
  const MAX_TEXT = 16000;
  const HISTORY_PAGE = 200;
  const DEFAULT_TITLE = 'New chat';
  const STORAGE = { token: 'workers.chat.token', user: 'workers.chat.user', session: 'workers.chat.session' };
  const TERMINAL = new Set(['complete', 'cancelled', 'failed']);
  const EVENT_TYPES = new Set(['TurnStarted', 'ReplyDelta', 'ToolInvoked', 'TurnCompleted', 'TurnFailed', 'TurnCancelled']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    signInForm: $('sign-in-form'),
    userId: $('user-id'),
    signIn: $('sign-in'),
    account: $('account'),
    signedInAs: $('signed-in-as'),
    connection: $('connection-state'),
    usage: $('usage'),
    signOut: $('sign-out'),
    error: $('error'),
    errorText: $('error-text'),
    errorDismiss: $('error-dismiss'),
    newSession: $('new-session'),
    sessionList: $('session-list'),
    noSessions: $('no-sessions'),
    title: $('session-title'),
    sessionActions: $('session-actions'),
    rename: $('rename-session'),
    settings: $('session-settings'),
    settingsPrompt: $('settings-prompt'),
    settingsTemperature: $('settings-temperature'),
    settingsModel: $('settings-model'),
    settingsTools: $('settings-tools'),
    regenerate: $('regenerate'),
    editLast: $('edit-last'),
    modelNames: $('model-names'),
    settingsSave: $('settings-save'),
    remove: $('delete-session'),
    messages: $('messages'),
    composer: $('composer'),
    input: $('message-input'),
    send: $('send'),
    stop: $('stop'),
  };

  const state = {
    token: null,
    userId: null,
    connection: null,
    generation: 0, // bumped at sign-out, so late answers for the previous user are dropped
    sessions: new Map(), // id -> { id, title, createdAt, lastActiveAt, turns }
    views: new Map(), // id -> the open session's thread, turns and stream position
    currentId: null,
    changes: 0, // local changes to the session list; a list fetched before one of them is stale
    // The notifiers this page may use (GET /page-config.json), the one in use first. When its connection is lost for
    // good, the page moves to the next and resumes every open chat from the last seq it saw.
    notifiers: [location.origin],
    notifier: 0,
    failovers: 0, // moves since the last successful connection: the wait before the next one grows with it
    unconfirmed: null, // { sessionId, text, requestId, replaces? } of a message or replacement the broker did not confirm
    editing: null, // the chat whose last message the composer is editing
  };

  /** The base URL of the notifier in use (REST and hub). */
  function base() {
    return state.notifiers[state.notifier];
  }

  async function loadNotifiers() {
    try {
      const response = await fetch('/page-config.json', { headers: { Accept: 'application/json' } });
      const config = response.ok ? await response.json() : {};
      const listed = config.notifiers;
      // The models a chat may choose, offered in its settings (one can still be typed).
      // The tool servers a chat may turn on, offered as the field's hint.
      if (Array.isArray(config.tools) && config.tools.length > 0) {
        ui.settingsTools.title = `Tool servers, comma-separated (here: ${config.tools.join(', ')}); empty: none but notes`;
      }
      if (Array.isArray(config.models)) {
        ui.modelNames.replaceChildren(...config.models.map((name) => Object.assign(document.createElement('option'), { value: String(name) })));
      }
      if (Array.isArray(listed) && listed.length > 0) {
        const urls = listed.map((u) => String(u).replace(/\/+$/, ''));
        // This page's own notifier first when it is listed; the others in their order.
        state.notifiers = urls.includes(location.origin) ? [location.origin, ...urls.filter((u) => u !== location.origin)] : urls;
      }
    } catch {
      // The page's own notifier only.
    }
  }

  // ---- errors ------------------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(code, message) {
      super(message ? `${code}: ${message}` : code);
      this.code = code;
    }
  }

  /** "code: detail" from a fetch problem, a HubException ("... HubException: session_not_found: ...") or anything. */
  function describe(error) {
    if (error instanceof ApiError) return error.message;
    const text = String((error && error.message) || error || 'unknown error');
    const hub = /HubException: ([\s\S]*)$/.exec(text);
    return hub ? hub[1] : text;
  }

  function showError(error) {
    ui.errorText.textContent = typeof error === 'string' ? error : describe(error);
    ui.error.hidden = false;
  }

  function clearError() {
    ui.errorText.textContent = '';
    ui.error.hidden = true;
  }

  // ---- REST --------------------------------------------------------------------------------------------------------

  async function api(method, path, body) {
    const generation = state.generation;
    const headers = { Accept: 'application/json' };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    try {
      response = await fetch(base() + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (error) {
      throw new ApiError('network_error', `could not reach the server (${describe(error)})`);
    }

    if (generation !== state.generation) throw new ApiError('signed_out', 'signed out meanwhile');
    if (response.status === 401 && state.token) {
      signOut();
      throw new ApiError('unauthorized', 'your sign-in has expired or was refused; sign in again');
    }

    if (!response.ok) {
      let problem = {};
      try {
        problem = await response.json();
      } catch {
        // not a problem-details body
      }
      throw new ApiError(problem.code || `http_${response.status}`, problem.detail || problem.title || response.statusText);
    }

    if (response.status === 204) return null;
    const type = response.headers.get('Content-Type') || '';
    return type.includes('json') ? response.json() : null;
  }

  // ---- sign in and out ---------------------------------------------------------------------------------------------

  async function signIn(userId) {
    clearError();
    ui.signIn.disabled = true;
    try {
      const response = await fetch('/dev/token', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ userId }),
      });
      if (response.status === 404) {
        throw new ApiError('not_available', 'development sign-in exists only when the notifier runs in Development');
      }
      if (!response.ok) {
        let problem = {};
        try {
          problem = await response.json();
        } catch {
          // not a problem-details body
        }
        throw new ApiError(problem.code || `http_${response.status}`, problem.detail || problem.title || response.statusText);
      }
      const { token } = await response.json();
      sessionStorage.setItem(STORAGE.token, token);
      sessionStorage.setItem(STORAGE.user, userId);
      await start(token, userId);
    } catch (error) {
      showError(error);
    } finally {
      ui.signIn.disabled = false;
    }
  }

  async function start(token, userId) {
    state.token = token;
    state.userId = userId;
    ui.signedInAs.textContent = userId;
    ui.signInForm.hidden = true;
    ui.account.hidden = false;
    ui.newSession.disabled = false;
    ui.title.textContent = 'Choose a chat or start a new one';
    connect();
    refreshUsage();
    await refreshSessions();
    const remembered = sessionStorage.getItem(STORAGE.session);
    const first = remembered && state.sessions.has(remembered) ? remembered : sortedSessions()[0]?.id;
    if (first && state.currentId === null) await selectSession(first);
  }

  function signOut() {
    state.generation += 1;
    const connection = state.connection;
    state.connection = null;
    if (connection) connection.stop().catch(() => {});
    state.token = null;
    state.userId = null;
    state.sessions.clear();
    state.views.clear();
    state.currentId = null;
    sessionStorage.removeItem(STORAGE.token);
    sessionStorage.removeItem(STORAGE.user);
    sessionStorage.removeItem(STORAGE.session);
    ui.signedInAs.textContent = '';
    ui.account.hidden = true;
    ui.signInForm.hidden = false;
    ui.newSession.disabled = true;
    ui.sessionList.replaceChildren();
    ui.noSessions.hidden = true;
    ui.messages.replaceChildren();
    ui.title.textContent = 'Sign in to start chatting';
    ui.sessionActions.hidden = true;
    setConnectionState('disconnected');
    updateComposer();
    ui.userId.focus();
  }

  // ---- the hub connection ------------------------------------------------------------------------------------------

  function setConnectionState(value) {
    ui.connection.dataset.state = value;
    ui.connection.dataset.notifier = base();
    const labels = { connected: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…' };
    ui.connection.textContent = labels[value] || 'offline';
    updateComposer();
  }

  function connected() {
    return state.connection !== null && state.connection.state === signalR.HubConnectionState.Connected;
  }

  /** Reconnect at once, then after 1 s, 2 s, 4 s ... at most 10 s apart; never with a token that has expired. */
  function retryDelay(retry) {
    if (tokenExpired()) {
      setTimeout(() => {
        signOut();
        showError('your sign-in has expired; sign in again');
      }, 0);
      return null;
    }
    // With other notifiers to go to, two quick retries here, then the connection closes and the page moves on.
    if (state.notifiers.length > 1 && retry.previousRetryCount >= 2) return null;
    return retry.previousRetryCount === 0 ? 0 : Math.min(10000, 1000 * 2 ** (retry.previousRetryCount - 1));
  }

  /** Moves to the next notifier and connects there; the open chats resume after their last seq. The first move is
   * at once; while every notifier refuses, the moves slow down to one every 10 s. */
  function failOver(generation) {
    const wait = state.failovers === 0 ? 0 : Math.min(10000, 500 * 2 ** (state.failovers - 1));
    state.failovers += 1;
    setTimeout(() => {
      if (generation !== state.generation) return;
      state.notifier = (state.notifier + 1) % state.notifiers.length;
      connect();
    }, wait);
  }

  /** Whether the token's exp claim has passed (the server decides; this only stops hopeless reconnects). */
  function tokenExpired() {
    try {
      const payload = state.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      const { exp } = JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), '=')));
      return typeof exp === 'number' && exp * 1000 <= Date.now();
    } catch {
      return false;
    }
  }

  function connect() {
    const generation = state.generation;
    const connection = new signalR.HubConnectionBuilder()
      // Bearer tokens, no cookies: a notifier of another origin answers without credentialed CORS.
      .withUrl(`${base()}/hubs/chat`, { accessTokenFactory: () => state.token, withCredentials: false })
      .withAutomaticReconnect({ nextRetryDelayInMilliseconds: retryDelay })
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    state.connection = connection;

    connection.on('event', (e) => {
      if (generation === state.generation) onEvent(e);
    });
    connection.onreconnecting(() => {
      if (generation === state.generation) setConnectionState('reconnecting');
    });
    connection.onreconnected(() => {
      if (generation !== state.generation) return;
      setConnectionState('connected');
      clearError();
      for (const view of state.views.values()) {
        if (view.loaded) subscribe(view); // resume each open session after the last seq it saw
      }
      refreshSessions().catch(showError);
    });
    connection.onclose((error) => {
      if (generation !== state.generation || state.connection !== connection) return; // signed out, or replaced
      setConnectionState('disconnected');
      if (state.notifiers.length > 1) {
        showError(`connection lost${error ? `: ${describe(error)}` : ''}; moving to another notifier`);
        failOver(generation);
        return;
      }
      showError(`connection closed${error ? `: ${describe(error)}` : ''}; retrying`);
      setTimeout(() => restart(connection, generation), 3000);
    });

    setConnectionState('connecting');
    startConnection(connection, generation);
  }

  async function startConnection(connection, generation) {
    for (let attempt = 0; ; attempt++) {
      try {
        await connection.start();
        break;
      } catch (error) {
        if (generation !== state.generation || state.connection !== connection) return;
        if (/401|Unauthorized/.test(describe(error))) {
          signOut();
          showError('your sign-in has expired or was refused; sign in again');
          return;
        }
        showError(`could not connect to the chat hub: ${describe(error)}; retrying`);
        if (state.notifiers.length > 1) {
          failOver(generation);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(30000, 1000 * 2 ** attempt)));
        if (generation !== state.generation) return;
      }
    }
    if (generation !== state.generation || state.connection !== connection) return;
    state.failovers = 0;
    setConnectionState('connected');
    if (/^(could not connect|connection lost)/.test(ui.errorText.textContent)) clearError();
    for (const view of state.views.values()) {
      if (view.loaded) subscribe(view);
    }
  }

  function restart(connection, generation) {
    if (generation !== state.generation || state.connection !== connection) return;
    if (connection.state !== signalR.HubConnectionState.Disconnected) return;
    // A refused token signs out through api(); otherwise connect again and resume every open session.
    api('GET', '/api/sessions')
      .then(() => {
        if (generation !== state.generation) return;
        setConnectionState('connecting');
        startConnection(connection, generation).then(() => {
          if (connected()) clearError();
        });
      })
      .catch((error) => {
        if (generation !== state.generation) return;
        showError(error);
        setTimeout(() => restart(connection, generation), 5000);
      });
  }

  // ---- sessions ----------------------------------------------------------------------------------------------------

  /** Most recently active first. */
  function sortedSessions() {
    const active = (session) => Date.parse(session.lastActiveAt || session.createdAt) || 0;
    return [...state.sessions.values()].sort((a, b) => active(b) - active(a));
  }

  function key(id) {
    return String(id).toLowerCase();
  }

  async function refreshSessions() {
    let list;
    for (;;) {
      const changes = state.changes;
      list = await api('GET', '/api/sessions');
      if (changes === state.changes) break; // else a chat was created, renamed or deleted meanwhile: ask again
    }
    state.sessions.clear();
    for (const session of list || []) state.sessions.set(key(session.id), { ...session, id: key(session.id) });
    renderSessions();
  }

  function renderSessions() {
    const items = sortedSessions().map((session) => {
      const item = document.createElement('li');
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'session';
      button.dataset.sessionId = session.id;
      button.dataset.testid = 'session';
      if (session.id === state.currentId) button.setAttribute('aria-current', 'true');
      const title = document.createElement('span');
      title.className = 'session-title';
      title.textContent = session.title || DEFAULT_TITLE;
      const meta = document.createElement('span');
      meta.className = 'session-meta';
      const turns = Number(session.turns) || 0;
      meta.textContent = `${turns} ${turns === 1 ? 'turn' : 'turns'} · ${when(session.lastActiveAt || session.createdAt)}`;
      button.append(title, meta);
      button.addEventListener('click', () => selectSession(session.id).catch(showError));
      item.append(button);
      return item;
    });
    ui.sessionList.replaceChildren(...items);
    ui.noSessions.hidden = items.length > 0 || !state.token;
  }

  function when(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const today = new Date().toDateString() === date.toDateString();
    return today ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : date.toLocaleDateString();
  }

  async function createSession() {
    clearError();
    ui.newSession.disabled = true;
    try {
      const session = await api('POST', '/api/sessions', { title: DEFAULT_TITLE });
      state.changes += 1;
      const id = key(session.id);
      state.sessions.set(id, { turns: 0, ...session, id });
      renderSessions();
      await selectSession(id);
      // Ready to type, unless the user has already moved on (say, to rename the chat).
      if (document.activeElement === document.body || document.activeElement === ui.newSession) ui.input.focus();
    } catch (error) {
      showError(error);
    } finally {
      ui.newSession.disabled = !state.token;
    }
  }

  /** The open chat's own system prompt ('' = the deployment's), temperature (empty = unchanged), model ('' = the default)
   * and tool servers (sent only when changed: a chat that never chose has the deployment's default set). */
  async function saveSettings() {
    const id = state.currentId;
    if (!id) return;
    const session = state.sessions.get(key(id));
    const temperature = ui.settingsTemperature.value.trim();
    const tools = ui.settingsTools.value.trim();
    const toolsChanged = tools !== toolsText(session);
    const updated = await api('PATCH', `/api/sessions/${encodeURIComponent(id)}`, {
      systemPrompt: ui.settingsPrompt.value,
      temperature: temperature === '' ? null : Number(temperature),
      model: ui.settingsModel.value.trim(),
      tools: toolsChanged ? tools.split(',').map((name) => name.trim()).filter((name) => name !== '') : null,
    });
    if (session && updated) {
      session.systemPrompt = updated.systemPrompt;
      session.temperature = updated.temperature;
      session.model = updated.model;
      session.tools = updated.tools;
    }
    ui.settings.open = false;
  }

  async function renameSession(id, title) {
    const updated = await api('PATCH', `/api/sessions/${encodeURIComponent(id)}`, { title });
    state.changes += 1;
    const session = state.sessions.get(id);
    if (session) {
      session.title = updated && typeof updated.title === 'string' ? updated.title : title;
      renderSessions();
      if (id === state.currentId) ui.title.textContent = session.title || DEFAULT_TITLE;
    }
  }

  function beginRename() {
    const id = state.currentId;
    const session = id && state.sessions.get(id);
    if (!session) return;
    const input = document.createElement('input');
    input.type = 'text';
    input.className = 'title-input';
    input.maxLength = 200;
    input.value = session.title || '';
    input.dataset.testid = 'title-input';
    input.setAttribute('aria-label', 'Chat title');
    let done = false;
    const finish = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.replaceWith(ui.title);
      ui.sessionActions.hidden = false;
      if (save && title && title !== session.title) {
        try {
          await renameSession(id, title);
        } catch (error) {
          showError(error);
        }
      }
    };
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') {
        e.preventDefault();
        finish(true);
      } else if (e.key === 'Escape') {
        finish(false);
      }
    });
    input.addEventListener('blur', () => finish(true));
    ui.title.replaceWith(input);
    ui.sessionActions.hidden = true;
    input.focus();
    input.select();
  }

  async function deleteSession() {
    const id = state.currentId;
    const session = id && state.sessions.get(id);
    if (!session || !window.confirm(`Delete "${session.title || DEFAULT_TITLE}" and all its messages?`)) return;
    clearError();
    try {
      await api('DELETE', `/api/sessions/${encodeURIComponent(id)}`);
      state.changes += 1;
    } catch (error) {
      if (error.code !== 'session_not_found') {
        showError(error);
        return;
      }
    }
    if (connected()) state.connection.invoke('Unsubscribe', id).catch(() => {});
    state.views.delete(id);
    state.sessions.delete(id);
    if (sessionStorage.getItem(STORAGE.session) === id) sessionStorage.removeItem(STORAGE.session);
    state.currentId = null;
    renderSessions();
    const next = sortedSessions()[0];
    if (next) {
      await selectSession(next.id);
    } else {
      showThread(null);
    }
  }

  // ---- one open session: its thread, turns and position in the event stream ----------------------------------------

  function newView(id) {
    const thread = document.createElement('div');
    thread.className = 'thread';
    thread.dataset.sessionId = id;
    return {
      id,
      thread,
      turns: new Map(), // requestId -> turn
      lastSeq: 0, // the highest seq applied; anything at or below it is a replay and is ignored
      loaded: false,
      subscribing: 0, // Subscribe calls in flight; live events wait in buffer meanwhile so they apply in seq order
      buffer: [],
    };
  }

  async function selectSession(id) {
    id = key(id);
    if (!state.sessions.has(id)) return;
    clearError();
    state.currentId = id;
    sessionStorage.setItem(STORAGE.session, id);
    renderSessions();
    let view = state.views.get(id);
    if (!view) {
      view = newView(id);
      state.views.set(id, view);
    }
    showThread(view);
    if (!view.loaded) {
      await loadHistory(view);
      if (connected()) await subscribe(view);
    }
  }

  function showThread(view) {
    const session = view && state.sessions.get(view.id);
    if (session) {
      ui.title.textContent = session.title || DEFAULT_TITLE;
    } else {
      ui.title.textContent = state.token ? 'Choose a chat or start a new one' : 'Sign in to start chatting';
    }
    ui.sessionActions.hidden = !session;
    if (session) {
      ui.settingsPrompt.value = session.systemPrompt || '';
      ui.settingsTemperature.value = session.temperature == null ? '' : String(session.temperature);
      ui.settingsModel.value = session.model || '';
      ui.settingsTools.value = toolsText(session);
    }
    ui.messages.replaceChildren(...(view ? [view.thread] : []));
    updateComposer();
    scrollToEnd(true);
  }

  async function loadHistory(view) {
    const generation = state.generation;
    const loading = document.createElement('p');
    loading.className = 'hint';
    loading.textContent = 'Loading…';
    view.thread.append(loading);
    try {
      for (let afterSeq = 0; ;) {
        const path = `/api/sessions/${encodeURIComponent(view.id)}/turns?afterSeq=${afterSeq}&limit=${HISTORY_PAGE}`;
        const page = await api('GET', path);
        if (generation !== state.generation) return;
        for (const turn of page || []) renderStoredTurn(view, turn);
        const last = page && page.length ? page[page.length - 1] : null;
        if (!last || page.length < HISTORY_PAGE || !(Number(last.lastSeq) > afterSeq)) break;
        afterSeq = Number(last.lastSeq);
      }
      view.loaded = true;
    } finally {
      loading.remove();
    }
    if (view.id === state.currentId) {
      updateComposer();
      scrollToEnd(true);
    }
  }

  function renderStoredTurn(view, stored) {
    const turn = ensureTurn(view, stored.requestId, stored.userText);
    turn.started = true;
    turn.counted = true;
    const status = TERMINAL.has(stored.status) ? stored.status : 'complete';
    setReply(turn, stored.replyText || '');
    if (status === 'failed') {
      setError(turn, stored.errorCode || 'failed', '');
    }
    for (const call of Array.isArray(stored.toolCalls) ? stored.toolCalls : []) {
      addTool(turn, { tool: `${call.plugin}.${call.function}`, status: call.status, callId: call.id });
    }
    if (status === 'complete' && stored.completionTokens) {
      setMeta(turn, `${stored.completionTokens} tokens`);
    }
    setStatus(view, turn, status);
    if (Number(stored.lastSeq) > view.lastSeq) view.lastSeq = Number(stored.lastSeq);
  }

  async function subscribe(view) {
    const generation = state.generation;
    const connection = state.connection;
    view.subscribing += 1;
    let replay = [];
    try {
      replay = (await connection.invoke('Subscribe', view.id, view.lastSeq)) || [];
    } catch (error) {
      if (generation === state.generation) showError(error);
    } finally {
      view.subscribing -= 1;
    }
    if (generation !== state.generation) return;
    const events = view.subscribing === 0 ? replay.concat(view.buffer.splice(0)) : replay;
    events.sort((a, b) => (Number(a.seq) || 0) - (Number(b.seq) || 0));
    for (const e of events) apply(view, e);
  }

  // ---- events ------------------------------------------------------------------------------------------------------

  function onEvent(e) {
    if (!e || !e.sessionId) return;
    const view = state.views.get(key(e.sessionId));
    if (!view) return; // not open in this page
    if (view.subscribing > 0) {
      view.buffer.push(e);
    } else {
      apply(view, e);
    }
  }

  function apply(view, e) {
    const seq = Number(e.seq) || 0;
    if (seq > 0) {
      if (seq <= view.lastSeq) return; // already seen (a resume may replay)
      view.lastSeq = seq;
    }
    if (!e.requestId || !EVENT_TYPES.has(e.type)) return;
    const known = view.turns.get(key(e.requestId));
    if (known && TERMINAL.has(known.status) && seq === 0) return;
    // A turn's start names its message: a turn sent from another tab or device shows it too.
    const turn = ensureTurn(view, e.requestId, e.type === 'TurnStarted' && typeof e.userText === 'string' ? e.userText : null);

    switch (e.type) {
      case 'TurnStarted':
        if (e.replaces) {
          // A new version of an earlier turn (regenerate, edit): it takes that turn's place.
          const replaced = view.turns.get(key(e.replaces));
          if (replaced && replaced !== turn) dropTurn(view, replaced);
        }
        if (turn.started) {
          // The same request started again (its worker died): what was streamed so far is void.
          setReply(turn, '');
          turn.tools.replaceChildren();
          turn.tools.hidden = true;
          setMeta(turn, '');
        }
        turn.started = true;
        setStatus(view, turn, 'streaming');
        break;
      case 'ReplyDelta':
        turn.started = true;
        // A resumed turn arrives as one snapshot delta holding the whole reply so far.
        setReply(turn, e.snapshot ? e.text || '' : turn.text + (e.text || ''));
        setStatus(view, turn, 'streaming');
        break;
      case 'ToolInvoked':
        addTool(turn, e);
        break;
      case 'TurnCompleted':
        setReply(turn, e.text ?? turn.text);
        setMeta(turn, metrics(e));
        setStatus(view, turn, 'complete');
        countTurn(view, turn);
        break;
      case 'TurnCancelled':
        setReply(turn, e.partialText ?? turn.text);
        setStatus(view, turn, 'cancelled');
        countTurn(view, turn);
        break;
      case 'TurnFailed':
        setError(turn, e.code || 'failed', e.message || '');
        setStatus(view, turn, 'failed');
        countTurn(view, turn);
        break;
      default:
        break;
    }
    if (view.id === state.currentId) scrollToEnd(false);
  }

  function metrics(e) {
    const parts = [];
    if (e.completionTokens) parts.push(`${e.completionTokens} tokens`);
    if (e.firstTokenMs) parts.push(`first token ${Math.round(e.firstTokenMs)} ms`);
    if (e.totalMs) parts.push(`${(e.totalMs / 1000).toFixed(1)} s`);
    return parts.join(' · ');
  }

  /** The usage gauge: tokens and cost today and this month (GET /api/usage), against the budgets where there are. */
  async function refreshUsage() {
    const generation = state.generation;
    let usage;
    try {
      usage = await api('GET', '/api/usage');
    } catch {
      return; // the gauge is a convenience: an error here is not the user's business
    }
    if (generation !== state.generation || !usage) return;
    const tokens = (n) => Number(n || 0).toLocaleString();
    const of = (limit) => (limit == null ? '' : ` of ${tokens(limit)}`);
    const usd = (n) => `$${Number(n || 0).toFixed(4)}`;
    const limits = usage.limits || {};
    ui.usage.textContent = `today ${tokens(usage.today.tokens)}${of(limits.dailyTokens)} tokens · ` +
      `month ${tokens(usage.month.tokens)}${of(limits.monthlyTokens)} tokens, ${usd(usage.month.costUsd)}` +
      (limits.monthlyCostUsd == null ? '' : ` of ${usd(limits.monthlyCostUsd)}`);
    const share = Math.max(
      limits.dailyTokens ? usage.today.tokens / limits.dailyTokens : 0,
      limits.monthlyTokens ? usage.month.tokens / limits.monthlyTokens : 0,
      limits.monthlyCostUsd ? usage.month.costUsd / limits.monthlyCostUsd : 0);
    ui.usage.dataset.level = share >= 1 ? 'spent' : share >= 0.8 ? 'high' : 'ok';
    ui.usage.hidden = false;
  }

  /** A turn that ended live (not loaded from history) adds one to its session's count in the list, once. */
  function countTurn(view, turn) {
    const session = state.sessions.get(view.id);
    if (!session || turn.counted) return;
    turn.counted = true;
    refreshUsage();
    session.turns = (Number(session.turns) || 0) + 1;
    session.lastActiveAt = new Date().toISOString();
    renderSessions();
  }

  // ---- rendering turns ---------------------------------------------------------------------------------------------

  function ensureTurn(view, requestId, userText) {
    const id = key(requestId);
    let turn = view.turns.get(id);
    if (turn) {
      if (userText && !turn.user) turn.user = addUserBubble(view, turn, userText);
      return turn;
    }

    const bubble = document.createElement('article');
    bubble.className = 'bubble assistant';
    bubble.dataset.testid = 'assistant';
    bubble.dataset.requestId = id;
    const text = document.createElement('div');
    text.className = 'text';
    text.dataset.testid = 'reply-text';
    const tools = document.createElement('div');
    tools.className = 'tools';
    tools.hidden = true;
    const note = document.createElement('div');
    note.className = 'note';
    note.hidden = true;
    const meta = document.createElement('div');
    meta.className = 'meta';
    meta.hidden = true;
    bubble.append(tools, text, note, meta);

    turn = { requestId: id, bubble, textNode: text, tools, note, meta, user: null };
    Object.assign(turn, { text: '', status: 'streaming', started: false, counted: false, stopping: false });
    view.turns.set(id, turn);
    if (userText) turn.user = addUserBubble(view, turn, userText);
    view.thread.append(bubble);
    setStatus(view, turn, 'streaming');
    return turn;
  }

  function addUserBubble(view, turn, text) {
    const bubble = document.createElement('article');
    bubble.className = 'bubble user';
    bubble.dataset.testid = 'user';
    bubble.dataset.requestId = turn.requestId;
    const body = document.createElement('div');
    body.className = 'text';
    body.textContent = text;
    bubble.append(body);
    view.thread.insertBefore(bubble, turn.bubble.isConnected ? turn.bubble : null);
    return bubble;
  }

  function setReply(turn, text) {
    turn.text = text;
    turn.textNode.textContent = text;
  }

  function setMeta(turn, text) {
    turn.meta.textContent = text;
    turn.meta.hidden = !text;
  }

  function setError(turn, code, message) {
    turn.note.textContent = message ? `${code}: ${message}` : code;
    turn.note.hidden = false;
  }

  function toolsText(session) {
    return session && Array.isArray(session.tools) ? session.tools.join(', ') : '';
  }

  /** A tool call's chip: added when it starts, updated in place when it ends (by call id). */
  function addTool(turn, e) {
    const status = String(e.status || '');
    let chip = e.callId ? [...turn.tools.children].find((c) => c.dataset.callId === String(e.callId)) : null;
    if (!chip) {
      chip = document.createElement('span');
      chip.dataset.testid = 'tool';
      if (e.callId) chip.dataset.callId = String(e.callId);
      turn.tools.append(chip);
    }
    const look = { started: ['running', '…', 'running'], ok: ['ok', '✓', 'succeeded'], timeout: ['error', '⏱', 'timed out'], cancelled: ['error', '■', 'stopped'] }[status]
      || ['error', '✗', status || 'failed'];
    chip.className = `tool ${look[0]}`;
    chip.dataset.status = status;
    chip.title = `${e.tool} ${look[2]}${e.durationMs != null ? ` in ${Math.round(e.durationMs)} ms` : ''}`;
    chip.textContent = `${e.tool} ${look[1]}`;
    turn.tools.hidden = false;
  }

  function setStatus(view, turn, status) {
    turn.status = status;
    turn.bubble.dataset.status = status;
    if (status === 'cancelled') {
      turn.note.textContent = '(stopped)';
      turn.note.hidden = false;
    } else if (status === 'streaming') {
      turn.note.textContent = '';
      turn.note.hidden = true;
      turn.stopping = false;
    }
    if (view.id === state.currentId) updateComposer();
  }

  function scrollToEnd(force) {
    const box = ui.messages;
    const nearEnd = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    if (force || nearEnd) box.scrollTop = box.scrollHeight;
  }

  // ---- composer ----------------------------------------------------------------------------------------------------

  function currentView() {
    return state.currentId ? state.views.get(state.currentId) : null;
  }

  function runningTurns(view) {
    return view ? [...view.turns.values()].filter((t) => t.status === 'streaming') : [];
  }

  function updateComposer() {
    const view = currentView();
    const ready = Boolean(view && view.loaded && connected());
    ui.input.disabled = !view;
    ui.send.disabled = !ready;
    const running = runningTurns(view);
    const replaceable = ready && running.length === 0 && Boolean(lastTurn(view));
    ui.regenerate.hidden = !replaceable;
    ui.editLast.hidden = !replaceable;
    // An edit is of the turn that was last when it began: a chat switched, or a turn started meanwhile, ends it.
    if (state.editing && (state.editing !== (view && view.id) || !replaceable)) stopEditing();
    ui.send.textContent = state.editing ? 'Save edit' : 'Send';
    ui.stop.hidden = running.length === 0;
    ui.stop.disabled = running.every((t) => t.stopping);
    ui.stop.textContent = ui.stop.disabled ? 'Stopping…' : 'Stop';
  }

  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === 'function') return crypto.randomUUID();
    // randomUUID needs a secure context; getRandomValues does not.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---- regenerate and edit the last turn ---------------------------------------------------------------------------

  /** The open chat's newest turn (turns are kept in the order they appeared). */
  function lastTurn(view) {
    let last = null;
    if (view) for (const turn of view.turns.values()) last = turn;
    return last;
  }

  function dropTurn(view, turn) {
    turn.user?.remove();
    turn.bubble.remove();
    view.turns.delete(turn.requestId);
  }

  function stopEditing() {
    state.editing = null;
    ui.send.textContent = 'Send';
  }

  /** Regenerate (no text) or edit the last turn: its new version streams in its place; the old one is kept as a version.
   *  Refused, the old turn comes back (and an edit's text to the composer). */
  async function replaceLast(text) {
    const view = currentView();
    const last = lastTurn(view);
    if (!last) return;
    if (!connected()) {
      showError('not connected to the chat hub yet; try again in a moment');
      return;
    }
    clearError();
    // Not confirmed by the broker last time ('unavailable'): the same replacement keeps its request id, so it runs once.
    const again = state.unconfirmed;
    const requestId = again && again.sessionId === view.id && again.replaces === last.requestId && again.text === text
      ? again.requestId : uuid();
    state.unconfirmed = null;
    const userText = text ?? (last.user ? last.user.textContent : '');
    dropTurn(view, last);
    const turn = ensureTurn(view, requestId, userText);
    scrollToEnd(true);
    try {
      if (text == null) await state.connection.invoke('RegenerateLast', view.id, requestId);
      else await state.connection.invoke('EditLast', view.id, text, requestId);
    } catch (error) {
      dropTurn(view, turn);
      if (last.user) view.thread.append(last.user);
      view.thread.append(last.bubble);
      view.turns.set(last.requestId, last);
      if (String((error && error.message) || error).includes('unavailable:')) {
        state.unconfirmed = { sessionId: view.id, text, requestId, replaces: last.requestId };
      }
      if (text != null) {
        ui.input.value = text;
        state.editing = view.id;
        autosize();
      }
      showError(error);
    }
    updateComposer();
  }

  function editLast() {
    const last = lastTurn(currentView());
    if (!last) return;
    state.editing = state.currentId;
    ui.input.value = last.user ? last.user.textContent : '';
    ui.send.textContent = 'Save edit';
    autosize();
    ui.input.focus();
  }

  async function send() {
    const view = currentView();
    const text = ui.input.value.trim();
    if (!view || !text) return;
    if (text.length > MAX_TEXT) {
      showError(`too_large: a message may have at most ${MAX_TEXT} characters (this one has ${text.length})`);
      return;
    }
    if (!connected()) {
      showError('not connected to the chat hub yet; try again in a moment');
      return;
    }
    if (state.editing === view.id) {
      stopEditing();
      ui.input.value = '';
      autosize();
      await replaceLast(text);
      return;
    }
    clearError();
    const session = state.sessions.get(view.id);
    const firstMessage = session && !(Number(session.turns) > 0) && view.turns.size === 0;
    // A message the broker did not confirm ('unavailable') may still have been queued: sent again unchanged, it keeps
    // its request id, so it runs once.
    const again = state.unconfirmed;
    const requestId = again && !again.replaces && again.sessionId === view.id && again.text === text ? again.requestId : uuid();
    state.unconfirmed = null;
    const turn = ensureTurn(view, requestId, text);
    ui.input.value = '';
    autosize();
    scrollToEnd(true);
    try {
      await state.connection.invoke('SendMessage', view.id, text, requestId);
    } catch (error) {
      // Not accepted: take the message back so nothing looks sent that was not.
      turn.user?.remove();
      turn.bubble.remove();
      view.turns.delete(key(requestId));
      if (!ui.input.value) ui.input.value = text;
      if (String((error && error.message) || error).includes('unavailable:')) state.unconfirmed = { sessionId: view.id, text, requestId };
      autosize();
      updateComposer();
      showError(error);
      return;
    }
    if (session) {
      session.lastActiveAt = new Date().toISOString();
      renderSessions();
      if (firstMessage && (session.title || DEFAULT_TITLE) === DEFAULT_TITLE) {
        // Name a new chat after its first message, as chat products do.
        const title = text.replace(/\s+/g, ' ').slice(0, 60);
        renameSession(view.id, title).catch(showError);
      }
    }
  }

  async function stop() {
    const view = currentView();
    const running = runningTurns(view).filter((t) => !t.stopping);
    if (!view || running.length === 0 || !connected()) return;
    // Stop the turn that is streaming, else the newest one still waiting.
    const turn = running.find((t) => t.started) || running[running.length - 1];
    turn.stopping = true;
    updateComposer();
    try {
      await state.connection.invoke('CancelTurn', view.id, turn.requestId);
    } catch (error) {
      turn.stopping = false;
      updateComposer();
      showError(error);
    }
  }

  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 240)}px`;
  }

  // ---- wiring ------------------------------------------------------------------------------------------------------

  ui.signInForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const userId = ui.userId.value.trim();
    if (userId) signIn(userId);
  });
  ui.signOut.addEventListener('click', () => {
    clearError();
    signOut();
  });
  ui.errorDismiss.addEventListener('click', clearError);
  ui.newSession.addEventListener('click', createSession);
  ui.rename.addEventListener('click', beginRename);
  ui.settingsSave.addEventListener('click', () => saveSettings().catch(showError));
  ui.remove.addEventListener('click', () => deleteSession().catch(showError));
  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (!ui.send.disabled) send();
    }
  });
  ui.input.addEventListener('input', autosize);
  ui.stop.addEventListener('click', stop);
  ui.regenerate.addEventListener('click', () => {
    if (state.editing) {
      stopEditing();
      ui.input.value = '';
      autosize();
    }
    replaceLast(null).catch(showError);
  });
  ui.editLast.addEventListener('click', editLast);
  // An edit ends with Escape or an emptied composer; the composer is a new message's again.
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.editing) {
      stopEditing();
      ui.input.value = '';
      autosize();
    }
  });
  ui.input.addEventListener('input', () => {
    if (state.editing && !ui.input.value.trim()) stopEditing();
  });

  if (typeof signalR === 'undefined') {
    showError('the SignalR client (lib/signalr.min.js) did not load; build the notifier to fetch it from npm');
    ui.signIn.disabled = true;
    return;
  }

  loadNotifiers().then(() => {
    const savedToken = sessionStorage.getItem(STORAGE.token);
    const savedUser = sessionStorage.getItem(STORAGE.user);
    if (savedToken && savedUser) {
      ui.userId.value = savedUser;
      start(savedToken, savedUser).catch(showError);
    } else {
      updateComposer();
      ui.userId.focus();
    }
  });
})();

// The run command's demo, in the terminal: two users chat at the same time, each in a session of their own, through
// the notifier's hub (the same calls a browser makes), with the replies streaming in as they are generated. Then Bob
// asks for the note Alice gave the agent: his session cannot see it.
// Usage: NODE_PATH=src/Workers.Notifier/ChatPage/node_modules node compose/local/demo.js [http://127.0.0.1:5080]
// (the notifier's build installs @microsoft/signalr there). Needs the notifier in Development (POST /dev/token).
'use strict';
const signalR = require('@microsoft/signalr');

const base = (process.argv[2] || 'http://127.0.0.1:5080').replace(/\/$/, '');
const tty = process.stdout.isTTY;
const paint = (code, text) => (tty ? `\x1b[${code}m${text}\x1b[0m` : text);
const colour = { alice: '36', bob: '33' };
const say = (line) => console.log(line);
const step = (text) => say(paint('1', `\n── ${text}`));

async function devToken(user) {
  const response = await fetch(`${base}/dev/token`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ userId: user }),
  });
  if (!response.ok) throw new Error(`POST /dev/token answered ${response.status} (is the notifier in Development?)`);
  return (await response.json()).token;
}

async function connect(user) {
  const token = await devToken(user);
  const connection = new signalR.HubConnectionBuilder()
    .withUrl(`${base}/hubs/chat`, {
      accessTokenFactory: () => token, transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true,
    })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  // Events by request id; a reply may start streaming before SendMessage has returned its id.
  const turns = new Map();
  const turn = (id) => {
    if (!turns.has(id)) {
      let resolve;
      const done = new Promise((r) => { resolve = r; });
      turns.set(id, { text: '', done, resolve });
    }
    return turns.get(id);
  };
  const tag = paint(colour[user], user.padEnd(5));
  connection.on('event', (e) => {
    const t = turn(e.requestId);
    if (e.type === 'ReplyDelta') {
      t.text += e.text;
      say(`${tag} ‹ ${e.text.trim()}`);
    } else if (e.type === 'TurnCompleted' || e.type === 'TurnFailed' || e.type === 'TurnCancelled') {
      t.resolve(e.type === 'TurnCompleted' ? e.text : `(${e.type}: ${e.code || ''} ${e.message || ''})`);
    }
  });
  await connection.start();
  const session = (await connection.invoke('CreateSession', `${user}'s demo chat`)).id;
  await connection.invoke('Subscribe', session, 0);
  say(`${tag}   signed in, session ${session}`);
  return {
    async ask(text) {
      say(`${tag} › ${text}`);
      const requestId = await connection.invoke('SendMessage', session, text, null);
      let timer;
      const reply = await Promise.race([
        turn(requestId).done,
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no reply to "${text}" within 60 s`)), 60000); }),
      ]).finally(() => clearTimeout(timer));
      say(`${tag} ✔ ${reply}`);
      return reply;
    },
    stop: () => connection.stop(),
  };
}

async function main() {
  step(`Two users sign in to ${base} and each opens a chat of their own`);
  const [alice, bob] = await Promise.all([connect('alice'), connect('bob')]);
  try {
    step('Both talk to the agent at the same time: their replies stream in side by side');
    await Promise.all([alice.ask('remember my locker code is 4711'), bob.ask('hello, I am Bob and I like chess')]);
    step('Alice asks for her note: her session has it');
    await alice.ask('what is my locker code?');
    step("Bob asks for the same note, and what was said so far: his session holds only his own words");
    const note = await bob.ask('what is my locker code?');
    const history = await bob.ask('what did I say?');
    if (note.includes('4711') || history.includes('4711') || history.includes('locker code is')) {
      throw new Error("Bob's session saw Alice's words");
    }
    step('Done: each session saw only its own messages. Open the page to chat yourself.');
  } finally {
    await Promise.all([alice.stop(), bob.stop()]);
  }
}

main().catch((e) => {
  console.error(`demo: ${e.message}`);
  process.exit(1);
});

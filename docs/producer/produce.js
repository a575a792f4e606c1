// Publishes one chat request to Workers as plain JSON with a stock AMQP client.
// Usage: node produce.js <sessionId> <userId> <text>
// AMQP_URL (default: WORKERS_AMQP_URL_PRODUCER, printed by compose/local/services.sh env) is the producer's login,
// which may only publish to workers.chat-requests. Every request carries that login as its AMQP user-id: the broker
// checks it, and the worker refuses a request without it and records it with the turn.
const amqp = require('amqplib');
const { randomUUID } = require('crypto');

const PARTITIONS = Number(process.env.WORKERS_PARTITIONS || 16);

// The contract's partition function: FNV-1a 32-bit over the lower-case hyphenated session id, mod P, two digits.
function routingKey(sessionId) {
  let hash = 2166136261;
  for (const byte of Buffer.from(sessionId.toLowerCase(), 'utf8')) {
    hash = Math.imul(hash ^ byte, 16777619) >>> 0;
  }
  return String(hash % PARTITIONS).padStart(2, '0');
}

async function main() {
  const [sessionId = randomUUID(), userId = 'alice', text = 'Hello from Node'] = process.argv.slice(2);
  const url = process.env.AMQP_URL || process.env.WORKERS_AMQP_URL_PRODUCER;
  if (!url) throw new Error('set AMQP_URL or WORKERS_AMQP_URL_PRODUCER (compose/local/services.sh env prints it)');
  const connection = await amqp.connect(url);
  const channel = await connection.createConfirmChannel();
  const request = { requestId: randomUUID(), sessionId, userId, text, sentAt: new Date().toISOString() };
  channel.publish('workers.chat-requests', routingKey(sessionId), Buffer.from(JSON.stringify(request)),
    { contentType: 'application/json', persistent: true, userId: decodeURIComponent(new URL(url).username) });
  await channel.waitForConfirms();
  console.log(JSON.stringify({ ...request, routingKey: routingKey(sessionId) }));
  await connection.close();
}

if (require.main === module) {
  main().catch((error) => { console.error(error.message); process.exit(1); });
}
module.exports = { routingKey };

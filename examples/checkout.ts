/**
 * The checkout story: the card is charged while the customer waits; the
 * receipt email and the analytics event happen after they have their answer.
 *
 * - `order.placed` fans out to two queues, `email` and `analytics`.
 * - The fake email provider fails now and then; those messages recover
 *   through retries with backoff.
 * - One order is malformed (no email address): a poison message that goes to
 *   dead letters at once instead of blocking the others.
 * - A double-clicked checkout publishes the same order twice; the
 *   idempotency key keeps it to one email.
 *
 * Run with `npm start`. It prints what happened and the queue stats.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Sluice, UnrecoverableError } from '../src/index.js';

interface Order {
  orderId: number;
  email?: string;
  total: number;
}

const file = path.resolve(process.env.SLUICE_EXAMPLE_DB ?? './data/checkout-example.db');
// Start from a clean file so every run tells the same story.
for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${file}${suffix}`, { force: true });
fs.rmSync(`${file}-wake`, { recursive: true, force: true });

const sluice = await Sluice.open(`sqlite:${file}`);
const log = (who: string, text: string) =>
  console.log(`${new Date().toISOString().slice(11, 23)}  ${who.padEnd(9)} ${text}`);

// Set-up, once per deployment: the topic's subscribers and the email policy.
await sluice.subscribe('order.placed', 'email');
await sluice.subscribe('order.placed', 'analytics');
await sluice.queue('email').configure({ maxAttempts: 5, backoff: { baseMs: 50, factor: 2, maxMs: 1_000 } });

// The request path: charge synchronously (the customer needs that answer),
// then hand the rest to the queue and return.
async function checkout(order: Order): Promise<string> {
  // Stands in for the payment call, itself idempotent on the order id.
  const charge = `ch_${order.orderId}`;
  const copies = await sluice.publish('order.placed', order, {
    idempotencyKey: `order-${order.orderId}`,
    correlationId: `checkout-${order.orderId}`,
  });
  const duplicate = copies.every((c) => c.duplicate);
  log(
    'checkout',
    `order ${order.orderId} charged (${charge})${duplicate ? ', already queued: duplicate ignored' : ''}`,
  );
  return charge;
}

// A fake email provider: fails about one call in four, deterministically.
let providerCalls = 0;
async function emailProvider(to: string, orderId: number): Promise<void> {
  providerCalls += 1;
  await new Promise((r) => setTimeout(r, 5));
  if ((providerCalls * 7) % 4 === 0) throw new Error(`provider answered 451 (try later) for ${to}`);
  log('email', `receipt for order ${orderId} sent to ${to}`);
}

const emailWorker = sluice.work<Order>(
  'email',
  async (msg, ctx) => {
    const order = msg.payload;
    if (!order.email) throw new UnrecoverableError(`order ${order.orderId} has no email address`);
    // once() records the send, so a redelivery after a crash does not email twice.
    await ctx.once(`receipt:${order.orderId}`, () => emailProvider(order.email as string, order.orderId));
  },
  { concurrency: 4 },
);
emailWorker.on('failed', (msg, error: Error, result) => {
  const what = result.ok && result.state === 'dead' ? 'dead-lettered' : 'will retry';
  log('email', `order ${(msg.payload as Order).orderId} attempt ${msg.attempt} failed: ${error.message} (${what})`);
});

let revenue = 0;
const analyticsWorker = sluice.work<Order>('analytics', async (msg) => {
  revenue += msg.payload.total;
});

const orders: Order[] = Array.from({ length: 12 }, (_, i) => ({
  orderId: 1040 + i,
  email: `customer${i}@example.com`,
  total: 20 + i,
}));
orders[5] = { orderId: 1045, total: 25 }; // malformed: no email address

for (const order of orders) await checkout(order);
await checkout(orders[2] as Order); // the double click

// Wait until every email is sent or dead-lettered.
for (;;) {
  const stats = await sluice.queue('email').stats();
  if (stats.completed + stats.dead === orders.length) break;
  await new Promise((r) => setTimeout(r, 20));
}
await emailWorker.close();
await analyticsWorker.close();

console.log('\nQueue stats');
for (const name of ['email', 'analytics']) {
  const s = await sluice.queue(name).stats();
  console.log(
    `  ${name.padEnd(9)} enqueued ${s.enqueued}, completed ${s.completed}, retried ${s.retried}, ` +
      `dead-lettered ${s.deadLettered}, ready ${s.ready}, in flight ${s.inFlight}`,
  );
}
console.log(`  analytics saw revenue ${revenue}`);

console.log('\nDead letters in "email"');
for (const dead of await sluice.queue('email').deadLetters()) {
  console.log(`  message ${dead.id} (correlation ${dead.correlationId}), reason ${dead.deadReason}:`);
  for (const e of dead.errors) console.log(`    attempt ${e.attempt}: ${e.error.split('\n')[0]}`);
}
console.log('\nFix the order, then: sluice.queue("email").redrive({ all: true })');
await sluice.close();

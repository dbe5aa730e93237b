// The Node.js side of the interoperability suite: one process hosting any number of MQTT.js
// clients (client.js) and aedes brokers (aedes_broker.js), driven by
// tests/integration/js_harness.py. One process per test file instead of one per client keeps
// node's start-up cost (~0.5 s) out of every test.
//
// stdin: one JSON command per line, {"op":..., "c":"<handle>", ...}; stdout: one JSON event per
// line, tagged with the same "c". Handles are chosen by the caller.
//   {"op":"broker_start", c}  -> {"event":"listening", c, port}; then the broker's events
//   {"op":"broker_stop", c}   -> {"event":"stopped", c}
//   {"op":"client_close", c}  forget the client (closing its connection if still open)
//   any other op              -> client.js, creating the client on its first command
// The process exits when stdin closes, so a dying test runner never leaves it behind.
import readline from 'node:readline';

import { startAedes } from './aedes_broker.js';
import { Client } from './client.js';

const clients = new Map();
const brokers = new Map();

function emitter(c) {
    // Pipes are synchronous on Linux: events reach the reader in the order they happened.
    return (event) => process.stdout.write(JSON.stringify({ ...event, c }) + '\n');
}

async function handle(cmd) {
    const c = cmd.c;
    switch (cmd.op) {
        case 'broker_start': {
            const broker = await startAedes(cmd.port ?? 0, emitter(c));
            brokers.set(c, broker);
            return emitter(c)({ event: 'listening', port: broker.port });
        }
        case 'broker_stop': {
            const broker = brokers.get(c);
            brokers.delete(c);
            if (broker) await broker.close();
            return emitter(c)({ event: 'stopped' });
        }
        case 'client_close':
            clients.get(c)?.close();
            clients.delete(c);
            return undefined;
        default: {
            if (!clients.has(c)) clients.set(c, new Client(emitter(c)));
            return clients.get(c).handle(cmd);
        }
    }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
        Promise.resolve(handle(cmd)).catch((e) =>
            emitter(cmd.c)({ event: 'error', message: 'command failed: ' + e.message }),
        );
    } catch (e) {
        emitter(cmd?.c ?? null)({ event: 'error', message: 'command failed: ' + e.message });
    }
});
process.stdin.on('end', () => process.exit(0));
// A bug in one client must not take the others down silently: report it, keep serving.
process.on('uncaughtException', (e) =>
    emitter(null)({ event: 'error', message: 'uncaught: ' + e.stack }),
);

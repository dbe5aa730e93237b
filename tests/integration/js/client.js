// MQTT.js (npm `mqtt`) driven by tests/integration/js_harness.py: one JSON command per stdin
// line, one JSON event per stdout line. Payloads and binary properties travel as base64 so
// every byte survives the trip. The process exits when stdin closes, so a dying test runner
// never leaves it behind.
//
// Commands (`id` is echoed back in the answering event):
//   {"op":"connect", host, port, ca, cert, key, protocolVersion, clientId, clean, keepalive,
//    reconnectPeriod, will:{topic, payload, qos, retain}, properties}
//   {"op":"subscribe", id, topics:{filter:{qos}}, properties}   -> suback {granted, error}
//   {"op":"unsubscribe", id, topics:[filter]}                    -> unsuback
//   {"op":"publish", id, topic, payload, qos, retain, properties} -> published {error, reasonCode}
//   {"op":"burst", id, topic, count, qos}  payload i = decimal i  -> burst_done {acked, errors}
//   {"op":"end", id, force}                                     -> ended
// Unsolicited events: connect, message, error, disconnect (v5 server DISCONNECT), close,
// offline, reconnect.
import fs from 'node:fs';
import readline from 'node:readline';

import mqtt from 'mqtt';

let client = null;

function emit(event) {
    // Pipes are synchronous on Linux: events reach the reader in the order they happened.
    process.stdout.write(JSON.stringify(event) + '\n');
}

function b64(buf) {
    return Buffer.from(buf ?? []).toString('base64');
}

function unb64(text) {
    return Buffer.from(text ?? '', 'base64');
}

// Properties as JSON: Buffers (correlationData, authenticationData) become base64 strings.
function propsOut(props) {
    if (!props) return undefined;
    const out = {};
    for (const [k, v] of Object.entries(props)) out[k] = Buffer.isBuffer(v) ? b64(v) : v;
    return out;
}

function propsIn(props) {
    if (!props) return undefined;
    const out = { ...props };
    if (out.correlationData !== undefined) out.correlationData = unb64(out.correlationData);
    return out;
}

function connect(cmd) {
    const opts = {
        protocol: 'mqtts',
        host: cmd.host ?? '127.0.0.1',
        port: cmd.port,
        ca: fs.readFileSync(cmd.ca),
        rejectUnauthorized: true,
        protocolVersion: cmd.protocolVersion ?? 4,
        clientId: cmd.clientId,
        clean: cmd.clean ?? true,
        keepalive: cmd.keepalive ?? 60,
        // No reconnection unless a test asks for it: each attempt would be a connection the
        // test did not plan for.
        reconnectPeriod: cmd.reconnectPeriod ?? 0,
        connectTimeout: cmd.connectTimeout ?? 10000,
    };
    if (cmd.cert) opts.cert = fs.readFileSync(cmd.cert);
    if (cmd.key) opts.key = fs.readFileSync(cmd.key);
    if (cmd.will) {
        opts.will = {
            topic: cmd.will.topic,
            payload: unb64(cmd.will.payload),
            qos: cmd.will.qos ?? 0,
            retain: cmd.will.retain ?? false,
        };
    }
    if (cmd.properties) opts.properties = cmd.properties;

    client = mqtt.connect(opts);
    client.on('connect', (connack) =>
        emit({
            event: 'connect',
            sessionPresent: connack.sessionPresent,
            reasonCode: connack.reasonCode ?? connack.returnCode ?? 0,
            properties: propsOut(connack.properties),
        }),
    );
    client.on('message', (topic, payload, packet) =>
        emit({
            event: 'message',
            topic,
            payload: b64(payload),
            qos: packet.qos,
            retain: packet.retain,
            dup: packet.dup,
            properties: propsOut(packet.properties),
        }),
    );
    client.on('error', (err) => emit({ event: 'error', message: err.message, code: err.code }));
    client.on('disconnect', (packet) =>
        emit({ event: 'disconnect', reasonCode: packet.reasonCode ?? 0 }),
    );
    client.on('close', () => emit({ event: 'close' }));
    client.on('offline', () => emit({ event: 'offline' }));
    client.on('reconnect', () => emit({ event: 'reconnect' }));
}

function publish(cmd) {
    const opts = { qos: cmd.qos ?? 0, retain: cmd.retain ?? false };
    if (cmd.properties) opts.properties = propsIn(cmd.properties);
    client.publish(cmd.topic, unb64(cmd.payload), opts, (err, packet) =>
        emit({
            event: 'published',
            id: cmd.id,
            error: err ? err.message : null,
            reasonCode: err?.code ?? packet?.reasonCode ?? 0,
        }),
    );
}

function burst(cmd) {
    let acked = 0;
    let errors = 0;
    for (let i = 0; i < cmd.count; i++) {
        client.publish(cmd.topic, String(i), { qos: cmd.qos ?? 1 }, (err) => {
            if (err) errors++;
            if (++acked === cmd.count) emit({ event: 'burst_done', id: cmd.id, acked, errors });
        });
    }
}

function handle(cmd) {
    switch (cmd.op) {
        case 'connect':
            return connect(cmd);
        case 'subscribe':
            return client.subscribe(cmd.topics, { properties: cmd.properties }, (err, _subs, p) =>
                emit({
                    event: 'suback',
                    id: cmd.id,
                    granted: p?.granted ?? null,
                    error: err ? err.message : null,
                }),
            );
        case 'unsubscribe':
            return client.unsubscribe(cmd.topics, (err) =>
                emit({ event: 'unsuback', id: cmd.id, error: err ? err.message : null }),
            );
        case 'publish':
            return publish(cmd);
        case 'burst':
            return burst(cmd);
        case 'end':
            return client.end(cmd.force ?? false, () => emit({ event: 'ended', id: cmd.id }));
        default:
            return emit({ event: 'error', message: 'unknown op ' + cmd.op });
    }
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
    if (!line.trim()) return;
    try {
        handle(JSON.parse(line));
    } catch (e) {
        emit({ event: 'error', message: 'command failed: ' + e.message });
    }
});
process.stdin.on('end', () => process.exit(0));

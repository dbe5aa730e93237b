// One MQTT.js (npm `mqtt`) client controlled by hub.js: commands are plain objects, results
// and unsolicited events go to emit(). Payloads and binary properties travel as base64 so
// every byte survives the trip through JSON.
//
// Commands (`id` is echoed back in the answering event):
//   connect      {host, port, protocol (mqtts | wss | ws), path, ca, cert, key,
//                 protocolVersion, clientId, clean, keepalive,
//                 reconnectPeriod, will:{topic, payload, qos, retain}, properties,
//                 options (more mqtt.connect options), trace (emit `packet` per PUBLISH)}
//   subscribe    {id, topics:{filter:{qos}}, properties}        -> suback {granted, error}
//   unsubscribe  {id, topics:[filter]}                          -> unsuback {error}
//   publish      {id, topic, payload, qos, retain, properties}  -> published {error, reasonCode}
//   burst        {id, topic, count, qos}  payload i = decimal i  -> burst_done {acked, errors}
//   end          {id, force}                                    -> ended
//   destroy      close the socket without DISCONNECT (an abrupt disconnect for the peer)
// Unsolicited: connect, message, error, disconnect (v5 server DISCONNECT), close, offline,
// reconnect, packet {dir, topic, topicAlias} with trace.
import fs from 'node:fs';

import mqtt from 'mqtt';

export function b64(buf) {
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

export class Client {
    constructor(emit) {
        this.emit = emit;
        this.mqtt = null;
    }

    handle(cmd) {
        switch (cmd.op) {
            case 'connect':
                return this.connect(cmd);
            case 'subscribe':
                return this.mqtt.subscribe(cmd.topics, { properties: cmd.properties }, (err, _s, p) =>
                    this.emit({
                        event: 'suback',
                        id: cmd.id,
                        granted: p?.granted ?? null,
                        error: err ? err.message : null,
                    }),
                );
            case 'unsubscribe':
                return this.mqtt.unsubscribe(cmd.topics, (err) =>
                    this.emit({ event: 'unsuback', id: cmd.id, error: err ? err.message : null }),
                );
            case 'publish':
                return this.publish(cmd);
            case 'burst':
                return this.burst(cmd);
            case 'end':
                return this.mqtt.end(cmd.force ?? false, () => this.emit({ event: 'ended', id: cmd.id }));
            case 'destroy':
                this.mqtt.options.reconnectPeriod = 0;
                return this.mqtt.stream?.destroy();
            default:
                return this.emit({ event: 'error', message: 'unknown op ' + cmd.op });
        }
    }

    close() {
        if (this.mqtt) this.mqtt.end(true);
    }

    connect(cmd) {
        const opts = {
            // mqtts by default; ws / wss for MQTT over WebSocket (with `path`).
            protocol: cmd.protocol ?? 'mqtts',
            path: cmd.path,
            host: cmd.host ?? '127.0.0.1',
            port: cmd.port,
            ca: fs.readFileSync(cmd.ca),
            rejectUnauthorized: true,
            protocolVersion: cmd.protocolVersion ?? 4,
            clientId: cmd.clientId,
            clean: cmd.clean ?? true,
            keepalive: cmd.keepalive ?? 60,
            // No reconnection unless a test asks for it: each attempt would be a connection
            // the test did not plan for.
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
        Object.assign(opts, cmd.options); // e.g. autoAssignTopicAlias

        const c = mqtt.connect(opts);
        this.mqtt = c;
        if (cmd.trace) {
            // What went on the wire after MQTT.js applied topic aliases.
            const trace = (dir) => (packet) => {
                if (packet.cmd !== 'publish') return;
                this.emit({
                    event: 'packet',
                    dir,
                    topic: packet.topic.toString(),
                    topicAlias: packet.properties?.topicAlias ?? null,
                });
            };
            c.on('packetsend', trace('out'));
            c.on('packetreceive', trace('in'));
        }
        c.on('connect', (connack) =>
            this.emit({
                event: 'connect',
                sessionPresent: connack.sessionPresent,
                reasonCode: connack.reasonCode ?? connack.returnCode ?? 0,
                properties: propsOut(connack.properties),
            }),
        );
        c.on('message', (topic, payload, packet) =>
            this.emit({
                event: 'message',
                topic,
                payload: b64(payload),
                qos: packet.qos,
                retain: packet.retain,
                dup: packet.dup,
                properties: propsOut(packet.properties),
            }),
        );
        c.on('error', (err) => this.emit({ event: 'error', message: err.message, code: err.code }));
        c.on('disconnect', (packet) =>
            this.emit({ event: 'disconnect', reasonCode: packet.reasonCode ?? 0 }),
        );
        c.on('close', () => this.emit({ event: 'close' }));
        c.on('offline', () => this.emit({ event: 'offline' }));
        c.on('reconnect', () => this.emit({ event: 'reconnect' }));
    }

    publish(cmd) {
        const opts = { qos: cmd.qos ?? 0, retain: cmd.retain ?? false };
        if (cmd.properties) opts.properties = propsIn(cmd.properties);
        this.mqtt.publish(cmd.topic, unb64(cmd.payload), opts, (err, packet) =>
            this.emit({
                event: 'published',
                id: cmd.id,
                error: err ? err.message : null,
                reasonCode: err?.code ?? packet?.reasonCode ?? 0,
            }),
        );
    }

    burst(cmd) {
        let acked = 0;
        let errors = 0;
        for (let i = 0; i < cmd.count; i++) {
            this.mqtt.publish(cmd.topic, String(i), { qos: cmd.qos ?? 1 }, (err) => {
                if (err) errors++;
                if (++acked === cmd.count)
                    this.emit({ event: 'burst_done', id: cmd.id, acked, errors });
            });
        }
    }
}

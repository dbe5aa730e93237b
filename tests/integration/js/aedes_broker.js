// aedes, a second MQTT broker (Node.js, MQTT 3.1/3.1.1 only), used as the gateway's backend by
// tests/integration/test_interop_js.py through hub.js. Plain TCP on 127.0.0.1.
//
// Also runnable on its own for manual interop checks:
//   node aedes_broker.js [PORT]     (0 or nothing = a kernel-chosen port)
// prints one JSON event per line, the first {"event":"listening","port":N}; exits on SIGTERM
// or when stdin closes.
import net from 'node:net';
import { pathToFileURL } from 'node:url';

import { Aedes } from 'aedes';

// Starts a broker; resolves to {port, close()} once it listens. Events go to emit().
export async function startAedes(port, emit) {
    const aedes = await Aedes.createBroker();
    const server = net.createServer(aedes.handle);

    aedes.on('client', (c) => emit({ event: 'client', id: c.id }));
    aedes.on('clientDisconnect', (c) => emit({ event: 'clientDisconnect', id: c.id }));
    aedes.on('clientError', (c, err) =>
        emit({ event: 'clientError', id: c?.id, error: err.message }),
    );
    aedes.on('connectionError', (c, err) =>
        emit({ event: 'connectionError', id: c?.id ?? null, error: err.message }),
    );
    aedes.on('connackSent', (packet, c) =>
        emit({ event: 'connackSent', id: c?.id ?? null, returnCode: packet.returnCode }),
    );
    aedes.on('subscribe', (subs, c) =>
        emit({ event: 'subscribe', id: c?.id, topics: subs.map((s) => [s.topic, s.qos]) }),
    );
    aedes.on('unsubscribe', (topics, c) => emit({ event: 'unsubscribe', id: c?.id, topics }));
    aedes.on('publish', (packet, c) => {
        if (packet.topic.startsWith('$SYS/')) return;
        emit({ event: 'publish', id: c?.id ?? null, topic: packet.topic, qos: packet.qos });
    });

    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
    });
    return {
        port: server.address().port,
        close: () =>
            new Promise((resolve) => {
                server.close();
                aedes.close(resolve);
            }),
    };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
    const emit = (e) => process.stdout.write(JSON.stringify(e) + '\n');
    const broker = await startAedes(Number(process.argv[2] ?? 0), emit);
    emit({ event: 'listening', port: broker.port });
    const stop = () => {
        setTimeout(() => process.exit(0), 2000).unref();
        broker.close().then(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.stdin.on('end', stop);
    process.stdin.resume();
}

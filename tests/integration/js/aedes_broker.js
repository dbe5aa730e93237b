// aedes, a second MQTT broker (Node.js, MQTT 3.1/3.1.1) used as the gateway's backend by
// tests/integration/test_interop_js.py. Plain TCP on 127.0.0.1, port from argv (0 = let the
// kernel choose). One JSON event per stdout line; the first is {"event":"listening","port":N}.
// Exits on SIGTERM or when stdin closes, so it never outlives the test that started it.
import net from 'node:net';

import { Aedes } from 'aedes';

function emit(event) {
    process.stdout.write(JSON.stringify(event) + '\n');
}

const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);

aedes.on('client', (c) => emit({ event: 'client', id: c.id }));
aedes.on('clientDisconnect', (c) => emit({ event: 'clientDisconnect', id: c.id }));
aedes.on('clientError', (c, err) => emit({ event: 'clientError', id: c?.id, error: err.message }));
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

function stop() {
    server.close();
    aedes.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () =>
    emit({ event: 'listening', port: server.address().port }),
);

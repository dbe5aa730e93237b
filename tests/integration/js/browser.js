// MQTT.js in a real headless browser: Debian's chromium driven by puppeteer-core. Serves a test
// page and MQTT.js's browser bundle from a tiny local HTTP server (so the page has a real
// http:// Origin for the gateway's allowlist), lets the page connect over wss, subscribe,
// publish and show what it received, and prints the page's result as one JSON line.
//
//   node browser.js <http port> <wss url> <client id> <protocolVersion> [username] [password]
//
// With a password (e.g. a JWT for auth.token) the page logs in with it; a refused CONNECT shows
// as result.error with the CONNACK code in result.code.
//
// The gateway's certificate is signed by the test CA: --ignore-certificate-errors stands in
// for importing that CA into a browser profile (test only).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const [httpPort, wssUrl, clientId, version, username, password] = process.argv.slice(2);
const login = password === undefined ? {} : { username: username ?? '', password };

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>moat wss test</title></head>
<body><pre id="out">pending</pre>
<script src="/mqtt.min.js"></script>
<script>
  const result = { connected: false, received: [], error: null, code: null };
  const show = () => { document.getElementById('out').textContent = JSON.stringify(result); };
  const finish = () => { show(); window.done = true; };
  const c = mqtt.connect(${JSON.stringify(wssUrl)}, {
    protocolVersion: ${Number(version) || 4}, clientId: ${JSON.stringify(clientId)},
    reconnectPeriod: 0, connectTimeout: 10000, ...${JSON.stringify(login)} });
  c.on('connect', () => {
    result.connected = true;
    c.subscribe('browser/#', { qos: 1 }, (err) => {
      if (err) { result.error = 'subscribe: ' + err.message; finish(); return; }
      c.publish('browser/hello', 'hello from chromium', { qos: 1 });
    });
  });
  c.on('message', (topic, payload) => {
    result.received.push([topic, payload.toString()]);
    c.end(false, {}, finish);
  });
  c.on('error', (e) => { result.error = String(e && e.message || e);
    if (e && typeof e.code === 'number') result.code = e.code; finish(); });
  c.on('close', () => { if (!window.done && !result.received.length) {
    result.error = result.error || 'closed'; finish(); } });
</script></body></html>`;

const server = http.createServer((req, res) => {
    if (req.url === '/mqtt.min.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' });
        res.end(fs.readFileSync(path.join(here, 'node_modules/mqtt/dist/mqtt.min.js')));
    } else if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(page);
    } else {
        res.writeHead(404);
        res.end();
    }
});
await new Promise((ok) => server.listen(Number(httpPort), '127.0.0.1', ok));

let browser;
let out = { connected: false, received: [], error: 'no result' };
try {
    browser = await puppeteer.launch({
        executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
        headless: true,
        args: ['--no-sandbox', '--ignore-certificate-errors', '--disable-gpu',
               '--disable-dev-shm-usage', '--no-first-run'],
    });
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.1:${httpPort}/`);
    await tab.waitForFunction('window.done === true', { timeout: 30000 });
    out = JSON.parse(await tab.$eval('#out', (el) => el.textContent));
} catch (e) {
    out.error = 'harness: ' + e.message;
} finally {
    if (browser) await browser.close();
    server.close();
}
process.stdout.write(JSON.stringify(out) + '\n');

// A real FHIR R4 server for the sink's tests: Medplum's FHIR router and its in-memory repository
// behind node:http, on 127.0.0.1. Usage: node --experimental-websocket server.mjs [port]
// (port 0, the default, picks a free one). It prints one line, "listening <port>", once ready,
// and serves the FHIR base at /r4/. It does not validate, and answers 404 for a deleted resource.
import http from 'node:http';
import { getStatus, normalizeOperationOutcome } from '@medplum/core';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const BASE = '/r4/';
const router = new FhirRouter();
const repo = new MemoryRepository();

function send(res, status, body, headers = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(text);
}

async function handle(req, res, raw) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (!url.pathname.startsWith(BASE)) {
    send(res, 404, normalizeOperationOutcome(new Error('not under the FHIR base ' + BASE)));
    return;
  }
  let body;
  if (raw.length) {
    try {
      body = JSON.parse(raw);
    } catch {
      send(res, 400, normalizeOperationOutcome(new Error('the body is not JSON')));
      return;
    }
  }
  const query = Object.fromEntries(url.searchParams.entries());
  const request = {
    method: req.method,
    url: url.pathname.slice(BASE.length) + url.search,
    pathname: '',
    body,
    params: {},
    query,
    headers: req.headers,
  };
  let outcome, resource;
  try {
    [outcome, resource] = await router.handleRequest(request, repo);
  } catch (err) {
    outcome = normalizeOperationOutcome(err);
  }
  const status = getStatus(outcome);
  const headers = {};
  if (resource?.meta?.versionId) {
    headers.etag = `W/"${resource.meta.versionId}"`;
    headers['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  send(res, status, resource ?? outcome, headers);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err) => {
      send(res, 500, normalizeOperationOutcome(err));
    });
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}

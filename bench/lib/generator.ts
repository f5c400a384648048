/**
 * The open-loop load generator, run in its own process (forked by the harness, configured over
 * IPC) so that its CPU is not the service's and can be reported apart.
 *
 * Request k is due at start + k * batch / rate, whether or not earlier ones were answered; its
 * latency runs from that intended time to the end of the answer, so a stalled server shows up in
 * the percentiles instead of slowing the load down (coordinated omission corrected).
 */
import { Agent, request } from 'node:http';
import * as hdr from 'hdr-histogram-js';
import { createDecisionGenerator } from '../../test/helpers/decisions.ts';
import type {
  GeneratorConfig,
  GeneratorMessage,
  GeneratorReport,
  LatencySummary,
  RateWindow,
} from './protocol.ts';

const TEMPLATES = 2048;

function send(msg: GeneratorMessage, then?: () => void): void {
  process.send?.(msg, undefined, undefined, then);
}

/** Decision bodies without their id: `{"decisionId":"<id>",` + tail gives a whole decision. */
function bodyTails(cfg: GeneratorConfig): string[] {
  const gen = createDecisionGenerator({ seed: cfg.seed, portfolios: cfg.portfolios, idPrefix: cfg.idPrefix });
  return gen.take(TEMPLATES).map((d) => {
    const { decisionId: _id, ...rest } = d;
    return JSON.stringify(rest).slice(1);
  });
}

function summary(h: hdr.Histogram): LatencySummary {
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    count: h.totalCount,
    mean: ms(h.mean),
    p50: ms(h.getValueAtPercentile(50)),
    p90: ms(h.getValueAtPercentile(90)),
    p99: ms(h.getValueAtPercentile(99)),
    p999: ms(h.getValueAtPercentile(99.9)),
    max: ms(h.maxValue),
  };
}

function countOf(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

async function run(cfg: GeneratorConfig): Promise<GeneratorReport> {
  const tails = bodyTails(cfg);
  const target = new URL('/v1/decisions', cfg.url);
  const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections, maxFreeSockets: cfg.connections });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${cfg.key}` };
  const intervalMs = (cfg.batch * 1000) / cfg.rate;
  const warmupMs = cfg.warmupS * 1000;
  const totalMs = warmupMs + cfg.durationS * 1000;
  const total = Math.max(1, Math.round(totalMs / intervalMs));
  const publishAck = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const sendLag = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const windowMs = cfg.windowS * 1000;
  const nWindows = Math.ceil((cfg.durationS * 1000) / windowMs);
  const ackedInWindow = new Array<number>(nWindows + 1).fill(0);
  const offeredInWindow = new Array<number>(nWindows).fill(0);
  const errors: Record<string, number> = {};
  const ackedRequests: number[] = [];
  let duplicateAcks = 0;
  let decisionsAcked = 0;
  let measuredAcked = 0;
  let pending = 0;
  let lastEnd = 0;

  const bodyOf = (k: number): string => {
    const base = k * cfg.batch;
    if (cfg.batch === 1) return `{"decisionId":"${cfg.idPrefix}-${base}",${tails[base % TEMPLATES]}`;
    const parts = new Array<string>(cfg.batch);
    for (let j = 0; j < cfg.batch; j++) {
      const n = base + j;
      parts[j] = `{"decisionId":"${cfg.idPrefix}-${n}",${tails[n % TEMPLATES]}`;
    }
    return `[${parts.join(',')}]`;
  };

  let start = 0;
  let measureStart = 0;
  let cpu0 = process.cpuUsage();
  let allAnswered: () => void = () => {};
  const answered = new Promise<void>((r) => (allAnswered = r));
  let k = 0;

  const finish = (idx: number, intended: number, ok: boolean, status: string, text: string) => {
    const end = performance.now();
    lastEnd = end;
    pending--;
    if (ok) {
      ackedRequests.push(idx);
      decisionsAcked += cfg.batch;
      duplicateAcks += countOf(text, '"duplicate":true');
      if (intended >= measureStart) {
        measuredAcked += cfg.batch;
        publishAck.recordValue(Math.max(1, Math.round((end - intended) * 1000)));
      }
      const w = Math.floor((end - measureStart) / windowMs);
      if (w >= 0) ackedInWindow[Math.min(w, nWindows)]! += cfg.batch;
    } else {
      errors[status] = (errors[status] ?? 0) + 1;
      if (intended >= measureStart) publishAck.recordValue(Math.max(1, Math.round((end - intended) * 1000)));
    }
    if (k >= total && pending === 0) allAnswered();
  };

  const fire = (idx: number, intended: number) => {
    const body = bodyOf(idx);
    const now = performance.now();
    if (intended >= measureStart) {
      sendLag.recordValue(Math.max(1, Math.round((now - intended) * 1000)));
      const w = Math.floor((intended - measureStart) / windowMs);
      if (w < nWindows) offeredInWindow[w]! += cfg.batch;
    }
    pending++;
    const req = request(
      target,
      { method: 'POST', agent, headers: { ...headers, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          finish(idx, intended, res.statusCode === 200, String(res.statusCode), text);
        });
        res.on('error', () => finish(idx, intended, false, 'network', ''));
      },
    );
    req.on('error', () => finish(idx, intended, false, 'network', ''));
    req.end(body);
  };

  start = performance.now() + 50;
  measureStart = start + warmupMs;
  let measuringSent = false;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!measuringSent && now >= measureStart) {
        measuringSent = true;
        cpu0 = process.cpuUsage();
        send({ type: 'measuring' });
      }
      while (k < total && start + k * intervalMs <= now) {
        fire(k, start + k * intervalMs);
        k++;
      }
      if (k >= total) return resolve();
      setTimeout(
        tick,
        Math.max(
          0,
          Math.min(start + k * intervalMs, measuringSent ? Infinity : measureStart) - performance.now(),
        ),
      );
    };
    setTimeout(tick, 50);
  });
  send({ type: 'sent' });
  if (pending > 0) {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([answered, new Promise((r) => (timer = setTimeout(r, cfg.drainTimeoutMs)))]);
    clearTimeout(timer);
  }
  const cpu = process.cpuUsage(cpu0);
  const measuredWallS = (Math.max(lastEnd, start + totalMs) - measureStart) / 1000;

  const windows: RateWindow[] = offeredInWindow.map((offered, w) => {
    const lenS = Math.min(cfg.windowS, cfg.durationS - w * cfg.windowS);
    const acknowledged = ackedInWindow[w]!;
    const r = (x: number) => Math.round(x * 10) / 10;
    return {
      startS: w * cfg.windowS,
      offered,
      acknowledged,
      offeredRate: r(offered / lenS),
      achievedRate: r(acknowledged / lenS),
      ratio: offered === 0 ? 0 : Math.round((acknowledged / offered) * 10_000) / 10_000,
    };
  });
  agent.destroy();
  return {
    measuredWallS,
    requestsSent: k,
    requestsAcked: ackedRequests.length,
    decisionsSent: k * cfg.batch,
    decisionsAcked,
    measuredDecisionsAcked: measuredAcked,
    duplicateAcks,
    errors,
    ackedRequests,
    publishAck: summary(publishAck),
    sendLag: summary(sendLag),
    windows,
    unanswered: pending,
    cpu: { userS: cpu.user / 1e6, systemS: cpu.system / 1e6 },
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
  };
}

process.once('message', (cfg: GeneratorConfig) => {
  run(cfg).then(
    // Exit once the report is out: requests left unanswered must not keep this process alive.
    (report) => send({ type: 'done', report }, () => process.exit(0)),
    (err: unknown) =>
      send({ type: 'failed', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});

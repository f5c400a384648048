/**
 * The open-loop load generator, run in its own process (forked by the harness, configured over
 * IPC) so that its CPU is not the service's and can be reported apart.
 *
 * Request k is due at start + k * batch / rate, whether or not earlier ones were answered; its
 * latency runs from that intended time to the end of the answer, so a stalled server shows up in
 * the percentiles instead of slowing the load down (coordinated omission corrected). The start is
 * in the clock all processes of a run share (bench/lib/clock.ts), so that the harness can compute
 * any decision's intended send time from the report and measure delivery latency from it.
 */
import { Agent, request } from 'node:http';
import { createDecisionGenerator } from '../../test/helpers/decisions.ts';
import { fromMono, toMono } from './clock.ts';
import { encodeHistogram, latencyHistogram, recordMs, summaryOf } from './hdr.ts';
import { buildTemplates, loadProfile, templateTails } from './profile.ts';
import type {
  GeneratorCommand,
  GeneratorConfig,
  GeneratorMessage,
  GeneratorReport,
  RateWindow,
} from './protocol.ts';

const SEEDED_TEMPLATES = 2048;

function send(msg: GeneratorMessage, then?: () => void): void {
  process.send?.(msg, undefined, undefined, then);
}

/** Decision bodies without their id: `{"decisionId":"<id>",` + tail gives a whole decision. */
function bodyTails(cfg: GeneratorConfig): string[] {
  if (cfg.source?.kind === 'profile') return templateTails(buildTemplates(loadProfile(cfg.source.file)));
  const gen = createDecisionGenerator({ seed: cfg.seed, portfolios: cfg.portfolios, idPrefix: cfg.idPrefix });
  return gen.take(SEEDED_TEMPLATES).map((d) => {
    const { decisionId: _id, ...rest } = d;
    return JSON.stringify(rest).slice(1);
  });
}

function countOf(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}

/** Waits for the harness's `go`: the schedule's start in the shared clock. */
function go(): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: GeneratorCommand) => {
      if (m.type !== 'go') return;
      process.off('message', on);
      resolve(m.startMono);
    };
    process.on('message', on);
  });
}

async function run(cfg: GeneratorConfig): Promise<GeneratorReport> {
  const tails = bodyTails(cfg);
  const started = go();
  send({ type: 'loaded' });
  const startMono = await started;
  const T = tails.length;
  const target = new URL('/v1/decisions', cfg.url);
  const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections, maxFreeSockets: cfg.connections });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${cfg.key}` };
  const intervalMs = (cfg.batch * 1000) / cfg.rate;
  const warmupMs = cfg.warmupS * 1000;
  const totalMs = warmupMs + cfg.durationS * 1000;
  const total = Math.max(1, Math.round(totalMs / intervalMs));
  const shard = cfg.shard ?? { index: 0, count: 1 };
  const publishAck = latencyHistogram();
  const sendLag = latencyHistogram();
  const windowMs = cfg.windowS * 1000;
  const nWindows = Math.ceil((cfg.durationS * 1000) / windowMs);
  const ackedInWindow = new Array<number>(nWindows + 1).fill(0);
  const offeredInWindow = new Array<number>(nWindows).fill(0);
  const seconds = Math.ceil(cfg.durationS) + Math.ceil(cfg.drainTimeoutMs / 1000) + 1;
  const offeredPerSecond = new Array<number>(Math.ceil(cfg.durationS)).fill(0);
  const ackedPerSecond = new Array<number>(seconds).fill(0);
  const errors: Record<string, number> = {};
  const ackedRequests: number[] = [];
  let duplicateAcks = 0;
  let decisionsAcked = 0;
  let measuredAcked = 0;
  let pending = 0;
  let lastEnd = 0;
  let sent = 0;

  const bodyOf = (k: number): string => {
    const base = k * cfg.batch;
    if (cfg.batch === 1) return `{"decisionId":"${cfg.idPrefix}-${base}",${tails[base % T]}`;
    const parts = new Array<string>(cfg.batch);
    for (let j = 0; j < cfg.batch; j++) {
      const n = base + j;
      parts[j] = `{"decisionId":"${cfg.idPrefix}-${n}",${tails[n % T]}`;
    }
    return `[${parts.join(',')}]`;
  };

  // All times below are this process's performance.now(); the schedule's start comes from the
  // shared clock (several generators share it; subscribers' receive times are measured against it).
  const start = fromMono(startMono);
  const measureStart = start + warmupMs;
  let cpu0 = process.cpuUsage();
  let allAnswered: () => void = () => {};
  const answered = new Promise<void>((r) => (allAnswered = r));
  let k = shard.index;

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
        recordMs(publishAck, end - intended);
      }
      const w = Math.floor((end - measureStart) / windowMs);
      if (w >= 0) ackedInWindow[Math.min(w, nWindows)]! += cfg.batch;
      const s = Math.floor((end - measureStart) / 1000);
      if (s >= 0 && s < seconds) ackedPerSecond[s]! += cfg.batch;
    } else {
      errors[status] = (errors[status] ?? 0) + 1;
      if (intended >= measureStart) recordMs(publishAck, end - intended);
    }
    if (k >= total && pending === 0) allAnswered();
  };

  const fire = (idx: number, intended: number) => {
    const body = bodyOf(idx);
    const now = performance.now();
    if (intended >= measureStart) {
      recordMs(sendLag, now - intended);
      const w = Math.floor((intended - measureStart) / windowMs);
      if (w < nWindows) offeredInWindow[w]! += cfg.batch;
      const s = Math.floor((intended - measureStart) / 1000);
      if (s < offeredPerSecond.length) offeredPerSecond[s]! += cfg.batch;
    }
    pending++;
    sent++;
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
        k += shard.count;
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
    setTimeout(tick, Math.max(0, Math.min(start, measureStart) - performance.now()));
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
  while (ackedPerSecond.length > offeredPerSecond.length && ackedPerSecond[ackedPerSecond.length - 1] === 0)
    ackedPerSecond.pop();
  return {
    startMono: toMono(start),
    intervalMs,
    measureStartMono: toMono(measureStart),
    requestsTotal: total,
    measuredWallS,
    requestsSent: sent,
    requestsAcked: ackedRequests.length,
    decisionsSent: sent * cfg.batch,
    decisionsAcked,
    measuredDecisionsAcked: measuredAcked,
    duplicateAcks,
    errors,
    ackedRequests,
    publishAck: summaryOf(publishAck),
    sendLag: summaryOf(sendLag),
    publishAckHistogram: encodeHistogram(publishAck),
    sendLagHistogram: encodeHistogram(sendLag),
    offeredPerSecond,
    ackedPerSecond,
    windows,
    unanswered: pending,
    cpu: { userS: cpu.user / 1e6, systemS: cpu.system / 1e6 },
    peakRssMb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
  };
}

process.once('message', (m: GeneratorCommand) => {
  if (m.type !== 'config') return;
  run(m.config).then(
    // Exit once the report is out: requests left unanswered must not keep this process alive.
    (report) => send({ type: 'done', report }, () => process.exit(0)),
    (err: unknown) =>
      send({ type: 'failed', error: String((err as Error)?.stack ?? err) }, () => process.exit(1)),
  );
});

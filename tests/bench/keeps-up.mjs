#!/usr/bin/env node
// Whether a rate step of th-bridge_load kept up, by the bridge scenario's rule
// (scenarios.mjs, bridge.keepsUp): scripts/bench asks it after each step, to stop before
// a backlog spills into the next, and tests/bench/render-bridge.mjs marks the steps.
//
//   node tests/bench/keeps-up.mjs "step rate=R send_rate=S backlog_mid=M backlog_end=E ..."
//   (exit 0: kept up, 1: did not)
import { scenarios } from './scenarios.mjs';
import { parseLines } from './collect.mjs';

// a step record {rate, send_rate, backlog_mid, backlog_end} -> true when it kept up:
// it sent ≥ sent × the offered rate, its backlog at the end is ≤ backlogEnd s worth of
// the rate, and the backlog grew by ≤ backlogGrowth s worth over its second half
export function keepsUp(step, rule = scenarios.bridge.keepsUp) {
  const r = Number(step.rate), s = Number(step.send_rate);
  const be = Number(step.backlog_end), bm = Number(step.backlog_mid);
  if (![r, s, be, bm].every(Number.isFinite)) return false;
  return s >= rule.sent * r && be <= rule.backlogEnd * r && be - bm <= rule.backlogGrowth * r;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rec = parseLines(process.argv[2] ?? '')[0] ?? {};
  process.exit(keepsUp(rec) ? 0 : 1);
}

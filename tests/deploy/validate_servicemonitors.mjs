// Validates ServiceMonitors against the Prometheus Operator's schema, as compiled into the npm
// package @kubernetes-models/prometheus-operator (generated from the operator's CRDs).
//   node validate_servicemonitors.mjs <node_modules dir> <servicemonitors.json>
// Checks types, required fields, enums and patterns (e.g. durations); like the CRD's structural
// schema, it does not reject unknown fields. Exit status 1 on any error.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [modules, input] = process.argv.slice(2);
const entry = path.join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js");
const { ServiceMonitor } = await import(pathToFileURL(entry).href);

const monitors = JSON.parse(fs.readFileSync(input, "utf8"));
let failed = 0;
for (const doc of monitors) {
  const name = `${doc.metadata?.namespace ?? ""}/${doc.metadata?.name ?? "?"}`;
  try {
    new ServiceMonitor(doc).validate();
    console.log(`ok    ServiceMonitor ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`ERROR ServiceMonitor ${name}: ${e.message}`);
  }
}
console.log(`ServiceMonitors: ${monitors.length} checked, ${failed} invalid`);
process.exitCode = failed ? 1 : 0;

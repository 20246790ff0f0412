/**
 * Custom resource definitions the tests install in the simulator: a namespaced `Patient`
 * (clinic.example.com/v1, short name `pt`) whose printer columns each test chooses.
 */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  priority?: number;
}

export function patientsCrd(additionalPrinterColumns: PrinterColumn[]) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: "patients.clinic.example.com" },
    spec: {
      group: "clinic.example.com",
      scope: "Namespaced",
      names: { plural: "patients", singular: "patient", kind: "Patient", shortNames: ["pt"] },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
          additionalPrinterColumns,
        },
      ],
    },
  };
}

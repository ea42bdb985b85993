// Scalar's browser bundle, imported with { type: "file" } so that it travels in the single executable too.
declare module "*/@scalar/api-reference/dist/browser/standalone.js" {
  const path: string;
  export default path;
}

// The dashboard page, imported as text so that it travels in the single executable too.
declare module "*.htm" {
  const text: string;
  export default text;
}

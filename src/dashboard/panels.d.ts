// The dashboard's scripts are served to browsers as they are; the gateway imports them as text.
declare const source: string;
export default source;

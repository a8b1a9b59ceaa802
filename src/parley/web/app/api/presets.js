// /api/presets: a user's saved settings to start conversations from.
import { json } from "./http.js";

const base = "/api/presets";
export const list = () => json("GET", base);
export const create = (fields) => json("POST", base, { body: fields });
export const update = (presetId, fields) => json("PATCH", `${base}/${encodeURIComponent(presetId)}`, { body: fields });
export const remove = (presetId) => json("DELETE", `${base}/${encodeURIComponent(presetId)}`);

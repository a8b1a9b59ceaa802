// The app's shared state, as signals: components read them, api/ modules write them.
import { signal, computed } from "../vendor/preact.js";

/** The signed-in user (from /api/me), or null; undefined while the session is restored. */
export const user = signal(undefined);
/** The access token: in memory only, never in storage (the refresh token is a cookie). */
export const accessToken = signal(null);
export const signedIn = computed(() => user.value != null);

/** The path the app shows (kept in step with history by router.js). */
export const path = signal(location.pathname);

/** The sidebar's conversations, newest activity first, and the cursor for the next page. */
export const conversations = signal([]);
export const nextCursor = signal(null);

/** Model groups the user may pick. */
export const models = signal([]);

/** A message for the whole page (offline, a failed load), or null. */
export const notice = signal(null);

/** Whether the sidebar is shown on a narrow screen (on a wide one it always is). */
export const sidebarOpen = signal(false);

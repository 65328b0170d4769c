/** The widget module's name and version (CONTRACT part B: `chat-oauth2-nb`, `^0.1.0`). */
export const MODULE_NAME = 'chat-oauth2-nb';
export const MODULE_VERSION = '0.1.0';

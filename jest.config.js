// Unit tests of the pure parts (formatting, status mapping, error rendering, the long-poll
// client) in jsdom; the widgets and the sidebar as a whole are tested in a real browser
// (tests/test_labextension_browser.py).
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testRegex: '/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  },
  moduleFileExtensions: ['ts', 'js', 'json']
};

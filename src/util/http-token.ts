/** An HTTP token (RFC 9110 5.6.2): a method, a header field name, a cookie name. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

//! `TestRsaKey`: one 2048-bit RSA key for tests and benchmarks only
//! (an OIDC issuer of their own signs RS256 identity tokens with it). ring
//! cannot generate RSA keys, so it is fixed here; never trust it anywhere.

/// The private key, PKCS#1 PEM.
pub const PRIVATE_PEM: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIEpQIBAAKCAQEA2ztkt8ECJl574MNfnxlaUQK5H0ZYDrPoI2Ktv7N8OvzwskiF
J1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI6+YJISV7wZQUGGPrQYn5YK0fPVi8
fXUd8/ytXBuFlWE2DuqXDd+d850hZNq1lkuH+Evgj6YT72342BYg9dCLThHV/QSA
W93fLPyTLhlndxbhf1KEH77djd/33REkCOSZFIZNOJu4aXgx0ExB8wzUhkF+PAxZ
p6GAspKa7RozLVB9xJfXyrx+JAZqm1yMWuwig5K7zfRmXq84qBTUn05KntyxELZh
fTQyoz7Fu2n6b/Vc+9ngwDbITTaaJnnhqhsNEQIDAQABAoIBAAdDzdfgA735QhIl
70iCqtFF7ZQJfPgJwq7PgZH5dOuwf5ps2ErAReAGcvlm9U0+orlePJQdSxreN0F+
j7WcYKAumI1aZGI7EbpoLz7V/2dSfVdHVkGzDJnN/QGxIMldNhEi+Xv6dc3Bnn5s
1/khyiDyhL/F4WG9C3K/svpqXX9p/Kgp0TeFlnEhVdaJCeVjHzviTCHpiMmUuUV2
yfPu1vGL+qpgm6ReLC2fOrl8ysQqHLterqbTKv76KYyeHkA2s7Ib6xWPnUdiXrqn
kNZVg55ecCxN37dnvx2Nk0SyXCy4rH3YdyAI3d86qtw/UN4RKi4C4fW/UwUgptgB
dRMSF+UCgYEA/bcb0VRJqoXBxMhKDKsCO7cWfJEeSCokW1di5HXgt9K3hryblu4N
UtgNa0hxSTLfQleZLSjP5wL0QBJtC5tl6Sk5lCp9eOIUpeISIOcNQrVq7YanVyMB
8BX0+4vAhvgECijGI3ev5KZhmOJ25eLigkYTD2I9ZDyMlo1VguOk0v0CgYEA3TTK
UKD9Ys5VETDAEXTwD9dv3TboK6PbVnsfoGnuDsVluL02ngW1mYjkTCKTQ07NA3Xz
NymV1ASl+/0qS/wC7s4o7m6+Z+Q+byvkQCT/rd5bX0S7TUM5s83G/VIwvqltkJhv
b3ENJEcBDuqrVqKVG+80egEzYmulJ634ijWwUKUCgYEAhopQLQwWWF+/phtT8S3J
7GKlgP7vYPM//lPztBSySqhp/AAOPdYUqKa7TvXGZTud2q9bIfBvdyBA560duDb6
rs7WorR5ft3cdy7P0DTV+lb70eNC39lHkMoD9FRiju/8LGr8zxgL5SM5w/nrdPKA
jPad6t18kqftIXTnMJaI8/0CgYEAukkVw/b/zHDEtNhgN5NKA51DaIEv3mh8c4T2
qmnq/+d+9afq0gMu3uComfFYIQvAnRR8wUy1D7rmaaLXNuxBMAjP8ZOzp9xQM+E7
tEU0SKEEQ+Om9LcTZfd6h6TqxfX6/hVRawFCtvVQz9YSesAqYD7+62wNcOoESLk6
oHH8TL0CgYEA8Ius00KYz5TciWkZBLln5TfvsNCfsQRjENRxohxlL1JWX4UsqfmV
fj/vej8orCMr/frWV/pBlZR8ae4Xi1ShZ54DcSpzY8+Wh9x3S8WbqRj6k4GZuly/
ME7T2kFJ1U0mqwRUtinIMusDcwhsM03edvqHA+vW2G/Y5h7dx41IhZs=
-----END RSA PRIVATE KEY-----\n";
/// The public key, SPKI PEM (what an attacker would use as an HMAC secret).
pub const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA2ztkt8ECJl574MNfnxla
UQK5H0ZYDrPoI2Ktv7N8OvzwskiFJ1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI
6+YJISV7wZQUGGPrQYn5YK0fPVi8fXUd8/ytXBuFlWE2DuqXDd+d850hZNq1lkuH
+Evgj6YT72342BYg9dCLThHV/QSAW93fLPyTLhlndxbhf1KEH77djd/33REkCOSZ
FIZNOJu4aXgx0ExB8wzUhkF+PAxZp6GAspKa7RozLVB9xJfXyrx+JAZqm1yMWuwi
g5K7zfRmXq84qBTUn05KntyxELZhfTQyoz7Fu2n6b/Vc+9ngwDbITTaaJnnhqhsN
EQIDAQAB
-----END PUBLIC KEY-----\n";
/// The modulus, base64url without padding: a JWK's `n` (`e` is `AQAB`).
pub const MODULUS: &str = "2ztkt8ECJl574MNfnxlaUQK5H0ZYDrPoI2Ktv7N8OvzwskiFJ1llNA0zwpP1xMJgP0ukNwiZ933gyYxyAfSI6-YJISV7wZQUGGPrQYn5YK0fPVi8fXUd8_ytXBuFlWE2DuqXDd-d850hZNq1lkuH-Evgj6YT72342BYg9dCLThHV_QSAW93fLPyTLhlndxbhf1KEH77djd_33REkCOSZFIZNOJu4aXgx0ExB8wzUhkF-PAxZp6GAspKa7RozLVB9xJfXyrx-JAZqm1yMWuwig5K7zfRmXq84qBTUn05KntyxELZhfTQyoz7Fu2n6b_Vc-9ngwDbITTaaJnnhqhsNEQ";

"""ISO 4217 currency codes a `purchase` may name (issue #21): the active codes of the standard's
list one (2026), plus the precious metals and special codes left out (XAU, XDR, XXX, …: an
order is not paid in them). A fixed list, not a dependency: it changes about once a year, and a
code missing here is refused with a clear 422 naming the field, so a new one is a one-line
change."""

from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

ISO_4217: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG
    """.split()
)


def _currency(value: object) -> str:
    """An ISO 4217 code, read case-insensitively ("usd" is USD), else a 422 naming it."""
    if not isinstance(value, str):
        raise PydanticCustomError("currency_type", "must be a three-letter ISO 4217 code")
    code = value.strip().upper()
    if code not in ISO_4217:
        raise PydanticCustomError(
            "unknown_currency",
            "unknown currency code '{code}': must be an ISO 4217 code such as USD, EUR or JPY",
            {"code": value[:16]},
        )
    return code


CurrencyCode = Annotated[str, BeforeValidator(_currency)]

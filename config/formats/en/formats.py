"""English date formats, with the zone: a time shown without it is read in the wrong
zone (the back-office renders in each person's zone, UTC by default). Only what
differs from Django's own English formats."""

DATETIME_FORMAT = "N j, Y, P T"
SHORT_DATETIME_FORMAT = "m/d/Y P T"

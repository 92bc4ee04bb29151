from ..params import Section


class TrackingParams(Section):
    pass

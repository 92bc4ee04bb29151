from ..params import Section


class BucketsParams(Section):
    pass


class MixParams(Section):
    pass

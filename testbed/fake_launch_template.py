"""RunInstances from a launch template takes the template's market, as EC2 does.

EC2 applies every setting of the launch template the request does not give itself; a template's
`InstanceMarketOptions` (Spot) therefore makes an instance Spot although the request names no
market, and RunInstances has no "on-demand" market type to override it with. moto applies a
template's image, type, key, groups, user data and disks, but takes the market from the request
only: an "On-Demand fallback" from a Spot template would come up On-Demand here and Spot on AWS.
With this module it comes up Spot here too (the instance's `InstanceLifecycle` says `spot`).

What it still does not do: the template's `SpotOptions` (price, interruption behaviour) are not
kept; moto keeps none of a request's either.
"""


def install() -> None:
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):  # noqa: ANN001, ANN202
        template_arg = kwargs.get("launch_template")
        if template_arg and not kwargs.get("instance_market_options"):
            data = self._get_template_from_args(template_arg).data
            market = (data.get("InstanceMarketOptions") or {}).get("MarketType")
            if market:
                kwargs["instance_market_options"] = market
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    InstanceBackend.run_instances = run_instances
